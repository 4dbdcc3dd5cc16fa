"""Config validation and the helpers that map config entries to files."""

from pathlib import Path

from ablation.config import validate_config
from ablation.masks import MASK_MODES

validate_config(config)

RESULTS = Path(config["results_dir"])
WORLD = RESULTS / "world"
EMBEDDED_MODEL = config["model"]["id"] == "embedded"
TINY_TASKS_DIR = WORLD / "tasks"


wildcard_constraints:
    mask="|".join(MASK_MODES),
    model="[A-Za-z0-9_.-]+",


def model_reference(model):
    """What from_pretrained loads for a model name used in output paths."""
    if model != "base":
        raise ValueError(f"unknown model {model!r}; known: base")
    return str(WORLD / "base_model") if EMBEDDED_MODEL else config["model"]["id"]


def eval_inputs(wildcards):
    """Files an evaluation needs: a locally built model and the tiny tasks, when used."""
    inputs = {}
    if wildcards.model == "base" and EMBEDDED_MODEL:
        inputs["model"] = WORLD / "base_model"
    if config["eval"]["task_set"] == "tiny":
        inputs["tasks"] = TINY_TASKS_DIR
    return inputs


def eval_metrics(model, mask):
    return RESULTS / "eval" / model / mask / "metrics.json"


def final_outputs():
    """Everything `snakemake` builds by default: the base model under every configured mask."""
    return [eval_metrics("base", mask) for mask in config["eval"]["masks"]]
