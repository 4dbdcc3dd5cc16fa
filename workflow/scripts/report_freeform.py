from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

import json  # noqa: E402 - after logging is routed
from pathlib import Path  # noqa: E402

from ablation.freeform.report import write_report  # noqa: E402

write_report(
    json.loads(Path(snakemake.input.scores).read_text()),
    dict(zip(map(tuple, snakemake.params.configurations), snakemake.input.generations)),
    table_stem=Path(snakemake.output.tables[0]).with_suffix(""),
    figure_stem=Path(snakemake.output.figures[0]).with_suffix(""),
    page=snakemake.output.page,
    examples_per_task=snakemake.params.examples_shown,
    experiment=snakemake.params.experiment,
)
