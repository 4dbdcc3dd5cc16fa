"""The two task sets of the study: lm-eval's real benchmarks and the embedded tiny world's."""

from __future__ import annotations

from pathlib import Path

from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from ablation.world import TINY_TASKS

REAL_TASKS = ("hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande")
TASK_SETS = {"real": REAL_TASKS, "tiny": TINY_TASKS}


def resolve_tasks(task_set: str, tasks: list[str] | None = None) -> tuple[str, ...]:
    """The tasks to run: all of ``task_set``, or the named subset of it."""
    if task_set not in TASK_SETS:
        raise ValueError(f"unknown task set {task_set!r}; allowed: {', '.join(TASK_SETS)}")
    allowed = TASK_SETS[task_set]
    if not tasks:
        return allowed
    unknown = [task for task in tasks if task not in allowed]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)} for task set {task_set!r}; allowed: {', '.join(allowed)}")
    return tuple(tasks)


def task_manager(tasks_dir: str | Path | None) -> TaskManager:
    """lm-eval's task registry, plus the tiny world's YAML tasks when ``tasks_dir`` is given."""
    if tasks_dir is not None and not Path(tasks_dir).is_dir():
        raise FileNotFoundError(f"task directory {tasks_dir!r} does not exist")
    return TaskManager(include_path=str(tasks_dir) if tasks_dir else None)


def validation_task_spec(manager: TaskManager, task: str) -> dict | str:
    """A registered task forced onto its validation split, as the original study evaluated.

    lm-eval scores ARC on its test split when one exists; the study used validation.
    """
    entry = manager.task_index.get(task)
    if entry is None or entry.yaml_path is None:
        return task
    config = load_yaml(entry.yaml_path, resolve_func=True)
    if not config.get("test_split"):
        return task
    return {**config, "task": task, "test_split": None}
