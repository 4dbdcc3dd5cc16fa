"""The prefill-mask study's settings and the helpers that map its config entries to files."""

from ablation.config import finetune_settings
from ablation.layout import (
    FINAL_MODEL_DIR,
    LOSS_HISTORY_FILE,
    METRICS_FILE,
    SAMPLES_FILE,
    SUMMARY_FILE,
    eval_dir,
    eval_metrics_path,
    finetune_dir,
    report_files,
    study_paths,
    sweep_study_paths,
)
from ablation.references import is_local_reference
from ablation.prefill.seed_sweep import is_own_seed, seed_results_dir, seed_study_config, sweep_seeds
from ablation.prefill.study import MASK_MODES, hub_tasks

PREFILL_ACTIVE = "prefill_mask" in config["studies"]
EMBEDDED_MODEL = config["model"]["id"] == "embedded"
TINY_TASKS_DIR = WORLD / "tasks"
RUNS = list(config["finetune"]["runs"])
SWEEP_SEEDS = sweep_seeds(config) if PREFILL_ACTIVE else []
# Stage 4 (prefill_bidir), the side effect (causal) and, when on, the original's Stage 4 mask
FINETUNE_EVAL_MASKS = ["prefill_bidir", "causal"] + (["full_bidir"] if config["eval"]["finetune_full_bidir"] else [])
REPORT_FILES = report_files(RESULTS, with_runs=bool(RUNS), seed_sweep=bool(SWEEP_SEEDS))
# a local base model is an input that must exist (validation checked it) but whose restored or
# touched files rerun nothing: its content is in every output's provenance
LOCAL_BASE_MODEL = (
    ancient(config["model"]["id"]) if not EMBEDDED_MODEL and is_local_reference(config["model"]["id"]) else None
)


def prefetched_model():
    """The prefill study's hub model, if it has one."""
    return config["model"]["id"] if PREFILL_ACTIVE and not EMBEDDED_MODEL else None


def prefetched_tasks():
    """The real and original sets' tasks read hub datasets; the tiny ones are built by the workflow."""
    if not PREFILL_ACTIVE:
        return []
    return list(hub_tasks(config["eval"]["task_set"], config["eval"]["tasks"]))


def prefetched_finetune_dataset():
    dataset = config["finetune"]["dataset"]
    return dataset if PREFILL_ACTIVE and RUNS and dataset != "embedded" else None


wildcard_constraints:
    mask="|".join(MASK_MODES),
    model="|".join(["base", *RUNS]),
    run="|".join(RUNS) or "(?!)",


def model_reference(model):
    """What from_pretrained loads for a model named in output paths: 'base' or a fine-tune run."""
    if model == "base":
        return str(WORLD / "base_model") if EMBEDDED_MODEL else config["model"]["id"]
    if model in RUNS:
        return str(finetune_dir(RESULTS, model) / "final")
    raise ValueError(f"unknown model {model!r}; known: base, {', '.join(RUNS)}")


def model_revision(model):
    """Only the base model has a hub revision; fine-tunes are local directories."""
    return config["model"]["revision"] if model == "base" and not EMBEDDED_MODEL else None


def instruction_dataset():
    """The tiny world's instruction set, or the hub dataset the config names."""
    dataset = config["finetune"]["dataset"]
    return str(WORLD / "instructions.jsonl") if dataset == "embedded" else dataset


def eval_inputs(wildcards):
    """Files an evaluation needs: a locally built or fine-tuned model and the tiny tasks, when used."""
    inputs = prefetch_inputs()
    if wildcards.model != "base" or EMBEDDED_MODEL:
        inputs["model"] = model_reference(wildcards.model)
    elif LOCAL_BASE_MODEL:
        inputs["model"] = LOCAL_BASE_MODEL
    if config["eval"]["task_set"] == "tiny":
        inputs["tasks"] = TINY_TASKS_DIR
    return inputs


def eval_job_params(model_id, revision):
    """The evaluation script's params; ``model_id`` and ``revision`` map a job's wildcards to its model."""
    return {
        "library_code": library_code("prefill/eval_model.py"),
        "model_id": model_id,
        "revision": revision,
        "model": config["model"],
        "eval": config["eval"],
        "tasks_dir": lambda wildcards, input: input.get("tasks"),
    }


def finetune_inputs(wildcards):
    return finetune_job_inputs(finetune_settings(config, wildcards.run))


def finetune_job_inputs(settings):
    """A fine-tune needs its base model and instruction data: built by the workflow, or prefetched."""
    inputs = prefetch_inputs()
    if EMBEDDED_MODEL:
        inputs["base_model"] = WORLD / "base_model"
    elif LOCAL_BASE_MODEL:
        inputs["base_model"] = LOCAL_BASE_MODEL
    if config["finetune"]["dataset"] == "embedded":
        inputs["dataset"] = WORLD / "instructions.jsonl"
    if settings["replay_fraction"] > 0:
        inputs["replay_corpus"] = replay_corpus()
    return inputs


def finetune_job_params(settings):
    """The fine-tune script's params; ``settings`` maps a job's wildcards to its run's settings."""
    return {
        "library_code": library_code("prefill/finetune.py"),
        "settings": settings,
        "base_model_id": model_reference("base"),
        "base_model_revision": model_revision("base"),
        "dataset": instruction_dataset(),
        "attn_implementation": config["model"]["attn_implementation"],
        "device": config["model"]["device"],
        "processes": max(1, config["resources"]["finetune"]["gpus"]),
        "strategy": config["finetune"]["distributed"],
    }


def replay_corpus():
    """The pre-training text that fine-tunes replay: the configured file, else the tiny world's corpus."""
    return config["finetune"]["replay_corpus"] or WORLD / "corpus.txt"


def prefill_outputs():
    """Every stage's evaluations (Stages 1, 2, 4 and the side effect) and the report built from them."""
    if not PREFILL_ACTIVE:
        return []
    outputs = [eval_metrics_path(RESULTS, "base", mask) for mask in config["eval"]["masks"]]
    for run in RUNS:
        outputs += [eval_metrics_path(RESULTS, run, mask) for mask in FINETUNE_EVAL_MASKS]
    return outputs + [path for files in REPORT_FILES.values() for path in files]


def report_inputs():
    """The report's files: this study's, plus every seed's evaluations when the config sweeps seeds."""
    inputs = study_paths(RESULTS, RUNS, full_bidir_after_ft=config["eval"]["finetune_full_bidir"])
    if SWEEP_SEEDS:
        inputs.update(sweep_study_paths({seed: seed_results_dir(config, seed) for seed in SWEEP_SEEDS}, RUNS))
    return inputs


def planner_history():
    """The loss history the cost plan reads; the rule is unavailable when the config has no planner."""
    if config["planner"] is None:
        raise ValueError("results/plan.md needs a 'planner' section in the config")
    return finetune_dir(RESULTS, config["planner"]["run"]) / "loss_history.csv"
