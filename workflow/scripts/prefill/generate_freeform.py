from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from ablation.prefill.freeform.run import generate_freeform  # noqa: E402 - after logging is routed
from ablation.prefetch import pinned_revision  # noqa: E402

generate_freeform(
    model_id=snakemake.params.model_id,
    mask=snakemake.wildcards.mask,
    tasks_path=snakemake.input.tasks,
    output=snakemake.output.generations,
    config=snakemake.config,
    revision=pinned_revision(snakemake.input.get("prefetch"), snakemake.params.revision),
)
