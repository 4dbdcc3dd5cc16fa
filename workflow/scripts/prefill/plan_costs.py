from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.prefill.planner import write_plan  # noqa: E402

write_plan(snakemake.input.history, snakemake.params.planner, snakemake.output.plan)
