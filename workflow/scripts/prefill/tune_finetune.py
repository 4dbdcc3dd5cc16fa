from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

import time  # noqa: E402
from pathlib import Path  # noqa: E402

from ablation.provenance import provenance  # noqa: E402
from ablation.prefill.report.tuning import write_tuning_report  # noqa: E402

started = time.perf_counter()
write_tuning_report(
    dict(snakemake.input.items()),
    snakemake.params.trials,
    snakemake.params.runs,
    snakemake.params.max_side_effect,
    Path(snakemake.output.choice).parent,
    stamp=lambda: provenance(
        model_id=snakemake.params.base_model_id,
        revision=snakemake.params.base_model_revision,
        mask=None,
        config=snakemake.config,
        seed=snakemake.config["seed"],
        wall_seconds=time.perf_counter() - started,
    ),
)
