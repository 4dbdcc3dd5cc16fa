from ablation.jobs import start_job

start_job(snakemake.log[0], snakemake.threads, offline=True)

from ablation.bridge.baselines import evaluate_alone  # noqa: E402
from ablation.models import resolve_device  # noqa: E402
from ablation.prefetch import pinned_revision  # noqa: E402

model_name = snakemake.wildcards.bridge_model
model = snakemake.params.model
evaluate_alone(
    model_name=model_name,
    model={**model, "revision": pinned_revision(snakemake.input.get("prefetch"), model["revision"], bridge_model=model_name)},
    dataset=snakemake.wildcards.bridge_dataset,
    dataset_source=snakemake.params.dataset_source,
    embedded_data_dir=snakemake.params.embedded_data_dir,
    eval_settings=snakemake.params.eval,
    metrics_path=snakemake.output.metrics,
    samples_path=snakemake.output.samples,
    config=snakemake.config,
    seed=snakemake.config["seed"],
    device=resolve_device(snakemake.params.device),
)
