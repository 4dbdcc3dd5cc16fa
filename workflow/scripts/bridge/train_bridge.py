from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from pathlib import Path  # noqa: E402

from ablation.bridge.launch import launch_bridge  # noqa: E402
from ablation.models import resolve_device  # noqa: E402
from ablation.prefetch import pinned_revision  # noqa: E402

prefetch_record = snakemake.input.get("prefetch")
models = {
    name: {**model, "revision": pinned_revision(prefetch_record, model["revision"], bridge_model=name)}
    for name, model in snakemake.params.models.items()
}
launch_bridge(
    {
        "run": snakemake.wildcards.bridge_run,
        "settings": snakemake.params.settings,
        "models": models,
        "dataset_source": snakemake.params.dataset_source,
        "embedded_data_dir": str(snakemake.params.embedded_data_dir),
        "eval_settings": snakemake.params.eval,
        "baseline_samples": {"source": snakemake.input.source_samples, "target": snakemake.input.target_samples},
        "source_metrics": snakemake.input.source_metrics,
        "run_dir": str(Path(snakemake.output.summary).parent),
        "config": snakemake.config,
        "device": resolve_device(snakemake.params.device),
        "source_states": (
            {"index": snakemake.input.source_states, "key": snakemake.params.source_state_key}
            if snakemake.params.source_state_key
            else None
        ),
        "kl_baselines": (
            {"index": snakemake.input.kl_baselines, "key": snakemake.params.kl_baseline_key}
            if snakemake.params.kl_baseline_key
            else None
        ),
    },
    processes=snakemake.params.processes,
)
