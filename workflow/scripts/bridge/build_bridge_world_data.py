from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path  # noqa: E402

from ablation.bridge.world_data import build_bridge_world_data  # noqa: E402

world = snakemake.params.world
build_bridge_world_data(
    Path(snakemake.output.corpus).parent,
    seed=world["seed"],
    train_examples=world["train_examples"],
    test_examples=world["test_examples"],
    corpus_documents=world["corpus_documents"],
)
