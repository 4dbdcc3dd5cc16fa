"""The prefill study's config checks that no schema can express, registered with ``ablation.config``
when the package is imported: task names, replay, seed sweep, local files, planner, token budgets."""

from __future__ import annotations

from ablation.config import context_window, finetune_settings, register_study_checks
from ablation.prefill.seed_sweep import sweep_problems
from ablation.prefill.study import resolve_tasks
from ablation.references import is_local_reference, local_file_problem, local_model_problem


def prefill_problems(config: dict, schema: dict) -> list[str]:
    """Values of the prefill study's keys that must agree with other keys or name files that exist."""
    problems = []
    try:
        resolve_tasks(config["eval"]["task_set"], config["eval"]["tasks"])
    except ValueError as error:
        problems.append(f"config key 'eval.tasks': {error}")
    runs = config["finetune"]["runs"]
    replaying = [run for run in runs if finetune_settings(config, run)["replay_fraction"] > 0]
    if replaying and config["finetune"]["replay_corpus"] is None and config["finetune"]["dataset"] != "embedded":
        problems.append(
            f"config key 'finetune.replay_corpus': run(s) {', '.join(replaying)} replay pre-training text, "
            "but only the 'embedded' dataset has a corpus of its own; name a text file"
        )
    problems += sweep_problems(config)
    problems += local_path_problems(config)
    if config["planner"] is not None and config["planner"]["run"] not in runs:
        problems.append(
            f"config key 'planner.run': {config['planner']['run']!r} is not a fine-tune run; configured: {', '.join(runs) or 'none'}"
        )
    return problems


def local_path_problems(config: dict) -> list[str]:
    """Local models, data and files the prefill study names that are missing or lack what they need,
    found before any job (a path-looking value is never taken for a hub id)."""
    if "prefill_mask" not in config["studies"]:
        return []
    problems = {}
    model_id = config["model"]["id"]
    if model_id != "embedded" and is_local_reference(model_id):
        problems["model.id"] = local_model_problem(model_id)
    finetune = config["finetune"]
    if finetune["runs"]:
        dataset = finetune["dataset"]
        if dataset != "embedded" and (is_local_reference(dataset) or dataset.endswith(".jsonl")):
            problems["finetune.dataset"] = local_file_problem(dataset, "instruction data file")
        if finetune["replay_corpus"] is not None:
            problems["finetune.replay_corpus"] = local_file_problem(finetune["replay_corpus"], "replay corpus")
    freeform = config["freeform"]
    if freeform["activate"] and freeform["task_set"] == "real" and freeform.get("tasks_file"):
        problems["freeform.tasks_file"] = local_file_problem(freeform["tasks_file"], "task file")
    return [f"config key '{key}': {problem}" for key, problem in problems.items() if problem]


def token_budget_problems(config: dict, schema: dict) -> list[str]:
    """Fine-tune sequence lengths that exceed the model's context window."""
    problems = []
    if "prefill_mask" in config["studies"]:
        window = context_window(config, config["model"]["id"])
        for run in config["finetune"]["runs"] if window else ():
            budget = finetune_settings(config, run)["max_seq_len"]
            if budget > window:
                problems.append(f"config key 'finetune.runs.{run}.max_seq_len': {budget} tokens exceed the model's context window of {window}")
    return problems


register_study_checks("prefill_mask", prefill_problems, token_budget_problems)
