from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path  # noqa: E402 - after logging is routed

from ablation.prefill.freeform.report import write_report  # noqa: E402
from ablation.io import read_json  # noqa: E402

write_report(
    read_json(snakemake.input.scores),
    dict(zip(map(tuple, snakemake.params.configurations), snakemake.input.generations)),
    table_stem=Path(snakemake.output.tables[0]).with_suffix(""),
    figure_stem=Path(snakemake.output.figures[0]).with_suffix(""),
    page=snakemake.output.page,
    examples_per_task=snakemake.params.examples_shown,
    experiment=snakemake.params.experiment,
    allow_mixed_code=snakemake.params.allow_mixed_code,
)
