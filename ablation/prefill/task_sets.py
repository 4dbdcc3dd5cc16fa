"""lm-eval task loading for the study's task sets (names in ``ablation.prefill.study``)."""

from __future__ import annotations

from pathlib import Path

from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from ablation.prefill.original.tasks import ORIGINAL_TASKS_DIR


def task_manager(tasks_dir: str | Path | None, tasks: list[str] | None = None) -> TaskManager:
    """lm-eval's task registry with the ``original`` set's tasks, plus the YAML tasks in ``tasks_dir``
    (the tiny world's) when given; a task there overrides a registered one of the same name.

    When every one of ``tasks`` is among those YAML tasks, lm-eval's own registry is left out:
    indexing its thousands of task files takes seconds in every evaluation job, and none of them
    is read.
    """
    if tasks_dir is not None and not Path(tasks_dir).is_dir():
        raise FileNotFoundError(f"task directory {tasks_dir!r} does not exist")
    include_path = [str(ORIGINAL_TASKS_DIR), *([str(tasks_dir)] if tasks_dir else [])]
    if tasks:
        own = TaskManager(include_path=include_path, include_defaults=False)
        if all(task in own.task_index for task in tasks):
            return own
    return TaskManager(include_path=include_path)


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


def fetch_task_datasets(tasks: list[str]) -> None:
    """Build each lm-eval task once, which downloads its dataset into the cache (the prefetch rule)."""
    manager = task_manager(None)
    manager.load([validation_task_spec(manager, task) for task in tasks])
