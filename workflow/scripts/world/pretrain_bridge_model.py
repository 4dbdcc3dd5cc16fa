from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.world import pretrain_bridge_model  # noqa: E402

world = snakemake.params.world
pretrain_bridge_model(
    snakemake.input.corpus,
    snakemake.input.tokenizer,
    snakemake.output.model,
    seed=world["seed"],
    model=world["model"],
    training=world["training"],
)
