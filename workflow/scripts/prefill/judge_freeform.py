from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.prefill.freeform.judge import judge_generations  # noqa: E402 - after logging is routed

judge_generations(
    generations=snakemake.input.generations,
    output=snakemake.output.judgments,
    judge=snakemake.params.judge,
    cache_path=snakemake.params.cache,
    config=snakemake.config,
)
