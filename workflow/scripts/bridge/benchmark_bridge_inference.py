from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from pathlib import Path  # noqa: E402

from ablation.bridge.benchmark import run_inference_benchmark  # noqa: E402
from ablation.models import resolve_device  # noqa: E402
from ablation.prefetch import pinned_revision  # noqa: E402

prefetch_record = snakemake.input.get("prefetch")
run_inference_benchmark(
    run=snakemake.wildcards.bridge_run,
    trained_run=snakemake.params.trained_run,
    translator_path=snakemake.input.translator,
    models={
        name: {**model, "revision": pinned_revision(prefetch_record, model["revision"], bridge_model=name)}
        for name, model in snakemake.params.models.items()
    },
    dataset_source=snakemake.params.dataset_source,
    embedded_data_dir=str(snakemake.params.embedded_data_dir),
    eval_settings=snakemake.params.eval,
    inference=snakemake.params.inference,
    out_dir=str(Path(snakemake.output.summary).parent),
    config=snakemake.config,
    device=resolve_device(snakemake.params.device),
)
