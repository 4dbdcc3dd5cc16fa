from pathlib import Path

from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from ablation.prefill.evaluate import evaluate_model  # noqa: E402 - after logging is routed
from ablation.models import resolve_device  # noqa: E402
from ablation.prefetch import pinned_revision  # noqa: E402

model, settings = snakemake.params.model, snakemake.params.eval
evaluate_model(
    model_id=snakemake.params.model_id,
    mask=snakemake.wildcards.mask,
    output_dir=Path(snakemake.output.metrics).parent,
    config=snakemake.config,
    task_set=settings["task_set"],
    tasks=settings["tasks"],
    tasks_dir=snakemake.params.tasks_dir,
    revision=pinned_revision(snakemake.input.get("prefetch"), snakemake.params.revision),
    limit=settings["limit"],
    batch_size=settings["batch_size"],
    device=resolve_device(model["device"]),
    dtype=model["dtype"],
    attn_implementation=model["attn_implementation"],
    eval_weights=model["eval_weights"],
    logprob_dtype=settings["logprob_dtype"],
    seed=snakemake.config["seed"],
)
