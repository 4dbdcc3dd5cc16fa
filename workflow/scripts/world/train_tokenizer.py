from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.world.tokenizer import train_tokenizer  # noqa: E402

train_tokenizer(snakemake.input.corpus, snakemake.output.tokenizer, vocab_size=snakemake.params.vocab_size)
