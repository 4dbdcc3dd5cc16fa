from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.world.data import build_dev_tasks  # noqa: E402

world = snakemake.params.world
build_dev_tasks(
    snakemake.output.tasks,
    seed=world["seed"],
    eval_examples_per_task=world["eval_examples_per_task"],
    dev_examples_per_task=snakemake.params.dev_examples_per_task,
)
