from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path  # noqa: E402

from ablation.bridge.report import build_bridge_report  # noqa: E402

build_bridge_report(
    dict(snakemake.input.items()),
    Path(snakemake.output.page).parent,
    roles=snakemake.params.roles,
    report=snakemake.params.report,
    descriptions=snakemake.params.descriptions,
    experiment=snakemake.params.experiment,
    reproductions=snakemake.params.reproductions,
    parity_config=snakemake.params.parity_config,
    forced_prompt_modes=snakemake.params.forced_prompt_modes,
    allow_mixed_code=snakemake.params.allow_mixed_code,
)
