"""Fine-tune tuning's grid and the helpers that map it to files (rules in rules/prefill/tuning.smk)."""

import re
from types import SimpleNamespace

from ablation.layout import (
    tuning_base_eval_dir,
    tuning_dir,
    tuning_eval_dir,
    tuning_files,
    tuning_finetune_dir,
    tuning_paths,
)
from ablation.prefill.tuning import trial_grid, trial_settings

TUNING = config["finetune"]["tuning"]
TUNING_TRIALS = trial_grid(TUNING["grid"])
TUNING_DIR = tuning_dir(RESULTS)
DEV_TASKS_DIR = WORLD / "tasks_dev"


wildcard_constraints:
    trial="|".join(map(re.escape, TUNING_TRIALS)),


def tuning_inputs(wildcards):
    """Every dev evaluation the choice reads; only a tiny-task config with fine-tune runs has a dev split to tune on."""
    if config["eval"]["task_set"] != "tiny" or not RUNS:
        raise ValueError(
            "tune_finetune chooses fine-tune settings on the tiny world's development split: it needs "
            f"eval.task_set 'tiny' (got {config['eval']['task_set']!r}) and at least one finetune.runs entry"
        )
    return tuning_paths(RESULTS, TUNING_TRIALS, RUNS)


def tuning_eval_inputs(model_dir=None):
    """A dev evaluation needs what the base model's evaluation needs, with the development tasks in
    place of the evaluation ones, and the fine-tune's model directory when it evaluates one."""

    def inputs(wildcards):
        files = {**eval_inputs(SimpleNamespace(model="base")), "tasks": DEV_TASKS_DIR}
        if model_dir is not None:
            files["model"] = model_dir(wildcards)
        return files

    return inputs


def trial_run_settings(wildcards):
    """The settings of a grid point's fine-tune of one run."""
    return trial_settings(config, wildcards.run, TUNING_TRIALS[wildcards.trial])


def trial_model_dir(wildcards):
    """Where a grid point's fine-tune of one run saves its model."""
    return str(tuning_finetune_dir(RESULTS, wildcards.trial, wildcards.run) / FINAL_MODEL_DIR)
