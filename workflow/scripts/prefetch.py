from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.prefetch import prefetch  # noqa: E402
from ablation.prefill.task_sets import fetch_task_datasets  # noqa: E402

prefetch(
    model_id=snakemake.params.model_id,
    revision=snakemake.params.revision,
    tasks=snakemake.params.tasks,
    finetune_dataset=snakemake.params.finetune_dataset,
    fetch_tasks=fetch_task_datasets,
    out_path=snakemake.output.record,
    bridge_models=snakemake.params.bridge_models,
    bridge_datasets=snakemake.params.bridge_datasets,
)
