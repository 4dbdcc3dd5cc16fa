from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.world.pretrain import pretrain_model  # noqa: E402

params = snakemake.params
pretrain_model(
    snakemake.input.corpus,
    snakemake.input.tokenizer,
    snakemake.output.model,
    seed=params.seed,
    model=params.model,
    training=params.training,
    architecture=params.architecture,
    document_separator=params.document_separator,
)
