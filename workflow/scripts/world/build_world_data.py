from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path  # noqa: E402

from ablation.world.data import build_world_data  # noqa: E402

world = snakemake.params.world
build_world_data(
    Path(snakemake.output.corpus).parent,
    seed=world["seed"],
    corpus_documents=world["corpus_documents"],
    eval_examples_per_task=world["eval_examples_per_task"],
    instruction_examples=world["instruction_examples"],
)
