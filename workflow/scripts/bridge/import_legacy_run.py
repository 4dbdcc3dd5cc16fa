from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path  # noqa: E402

from ablation.bridge.original_runs import import_legacy_run  # noqa: E402

entry = snakemake.params.entry
import_legacy_run(
    entry["path"],
    Path(snakemake.output.summary).parent,
    name=entry["name"],
    role=entry["role"],
    experiment=entry["experiment"],
    provenance_extra={"config_entry": dict(entry)},
)
