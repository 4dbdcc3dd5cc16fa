from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from pathlib import Path  # noqa: E402

from ablation.prefill.finetune.launch import launch_finetune  # noqa: E402
from ablation.models import resolve_device  # noqa: E402
from ablation.prefetch import pinned_revision  # noqa: E402

launch_finetune(
    {
        "run_name": snakemake.wildcards.run,
        "base_model_id": snakemake.params.base_model_id,
        "base_model_revision": pinned_revision(snakemake.input.get("prefetch"), snakemake.params.base_model_revision),
        "dataset": snakemake.params.dataset,
        "settings": snakemake.params.settings,
        "run_dir": str(Path(snakemake.output.summary).parent),
        "config": snakemake.config,
        "seed": snakemake.config["seed"],
        "attn_implementation": snakemake.params.attn_implementation,
        "device": resolve_device(snakemake.params.device),
        "replay_corpus": snakemake.input.get("replay_corpus"),
    },
    processes=snakemake.params.processes,
    strategy=snakemake.params.strategy,
    precision=snakemake.params.settings["precision"],
)
