from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.prefill.freeform.tasks import build_task_set  # noqa: E402 - after logging is routed

build_task_set(snakemake.params.freeform, snakemake.params.world_seed, snakemake.output.tasks)
