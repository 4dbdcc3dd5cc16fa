from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from ablation.bridge.frozen_cache import build_run_cache  # noqa: E402
from ablation.models import resolve_device  # noqa: E402
from ablation.prefetch import pinned_revision  # noqa: E402

model = snakemake.params.model
build_run_cache(
    snakemake.params.kind,
    snakemake.output.index,
    key=snakemake.params.key,
    settings=snakemake.params.settings,
    model={**model, "revision": pinned_revision(snakemake.input.get("prefetch"), model["revision"], bridge_model=snakemake.params.model_name)},
    dataset_source=snakemake.params.dataset_source,
    embedded_data_dir=str(snakemake.params.embedded_data_dir),
    eval_settings=snakemake.params.eval,
    max_gb=snakemake.params.max_gb,
    device=resolve_device(snakemake.params.device),
    config=snakemake.config,
)
