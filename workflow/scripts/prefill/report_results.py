from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path  # noqa: E402

from ablation.prefill.report import build_report  # noqa: E402

build_report(
    dict(snakemake.input.items()),
    Path(snakemake.output.page).parent,
    train_masks=snakemake.params.train_masks,
    experiment=snakemake.params.experiment,
    linked_pages=snakemake.params.linked_pages,
    allow_mixed_code=snakemake.params.allow_mixed_code,
)
