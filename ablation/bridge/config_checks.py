"""The bridge study's config checks that no schema can express, registered with ``ablation.config``
when the package is imported: run lineage and names, report roles, local files, prompt budgets."""

from __future__ import annotations

from pathlib import Path

from ablation.bridge.roles import report_problems
from ablation.bridge.settings import run_problems, run_settings
from ablation.config import context_window, register_study_checks
from ablation.references import embedded_model_name, is_local_reference, local_file_problem, local_model_problem


def bridge_problems(config: dict, schema: dict) -> list[str]:
    """Values of the bridge's keys that must agree with other keys or name files that exist."""
    if "bridge" not in config["studies"]:
        return []
    bridge = config["bridge"]
    return run_problems(bridge, schema, config["seed"]) + report_problems(bridge) + local_path_problems(bridge)


def local_path_problems(bridge: dict) -> list[str]:
    """Local models and dataset splits the bridge names that are missing or lack what they need,
    found before any job (a path-looking value is never taken for a hub id)."""
    problems = {}
    for name, model in bridge["models"].items():
        if embedded_model_name(model["id"]) is None and is_local_reference(model["id"]):
            problems[f"bridge.models.{name}.id"] = local_model_problem(model["id"])
    for name, source in bridge["datasets"].items():
        if source["path"] != "embedded" and is_local_reference(source["path"]):
            splits = [str(Path(source["path"]) / f"{source[split]}.jsonl") for split in ("train_split", "eval_split")]
            problems[f"bridge.datasets.{name}.path"] = next(filter(None, (local_file_problem(split, "split file") for split in splits)), None)
    return [f"config key '{key}': {problem}" for key, problem in problems.items() if problem]


def token_budget_problems(config: dict, schema: dict) -> list[str]:
    """Prompt budgets that exceed the context window of the source or target model."""
    problems = []
    if "bridge" in config["studies"]:
        for run in config["bridge"]["runs"]:
            try:
                settings = run_settings(config["bridge"], run, schema, config["seed"])
            except ValueError:
                continue  # run_problems names it
            for role in ("source", "target"):
                model = config["bridge"]["models"].get(settings[role])
                window = context_window(config, model["id"]) if model else None
                if window and settings["max_prompt_tokens"] > window:
                    problems.append(f"config key 'bridge.runs.{run}.max_prompt_tokens': {settings['max_prompt_tokens']} tokens exceed the "
                                    f"{role} model {settings[role]!r}'s context window of {window}")
    return problems


register_study_checks("bridge", bridge_problems, token_budget_problems)
