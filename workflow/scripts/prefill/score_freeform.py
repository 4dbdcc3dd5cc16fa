from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from ablation.prefill.freeform.scores import score_generations  # noqa: E402 - after logging is routed

configurations = list(map(tuple, snakemake.params.configurations))
score_generations(
    dict(zip(configurations, snakemake.input.generations)),
    snakemake.output.scores,
    resamples=snakemake.params.resamples,
    judgments=dict(zip(configurations, snakemake.input.judgments)) or None,
)
