"""The study's derived numbers: how much the prefill ablation costs and how much fine-tuning wins back.

Definitions follow the original study (its "recovery" is ``recovery_ratio``), on ``acc`` per task and
on the metrics' ``macro_acc``, with S1 = eval(base, causal), S2 = eval(base, prefill_bidir),
S4 = eval(fine-tune, prefill_bidir):

- damage = S2 - S1, retention = S2 / S1
- gain = S4 - S2, recovery_ratio = S4 / S1 (the original's "recovery"), and
  recovered_fraction = (S4 - S2) / (S1 - S2), the share of the lost accuracy won back
- side_effect_delta = eval(fine-tune, causal) - S1
- success criteria of the design: retains_80pct (S4 >= 0.8 S1), gains_5pts (S4 >= S2 + 0.05),
  success = both.

A quantity that cannot be formed (a missing input, a zero denominator) is None, never inf.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ablation.prefill.report.study import STAGE1, STAGE2, Study, task_acc

RETENTION_TARGET = 0.8
GAIN_TARGET = 0.05
# Accuracies are k / n, so S4 can sit exactly on a criterion's boundary; float rounding of
# 0.8 * S1 or S2 + 0.05 must not turn that tie into a fail.
CRITERION_TOLERANCE = 1e-9
# Below this a denominator is treated as zero: the ratio is undefined, not huge.
ZERO = 1e-12


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or abs(denominator) < ZERO:
        return None
    return numerator / denominator


def _at_least(value: float | None, threshold: float | None) -> bool | None:
    if value is None or threshold is None:
        return None
    return value >= threshold - CRITERION_TOLERANCE


def _both(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None or b is None else a and b


def damage_numbers(s1: float | None, s2: float | None) -> dict:
    """Stage 1 vs Stage 2 for one accuracy: the cost of the ablation."""
    return {"s1": s1, "s2": s2, "damage": _difference(s2, s1), "retention": _ratio(s2, s1)}


def recovery_numbers(s1: float | None, s2: float | None, s4: float | None, side: float | None = None) -> dict:
    """Every derived number for one accuracy (a task's or the macro)."""
    retains = _at_least(s4, None if s1 is None else RETENTION_TARGET * s1)
    gains = _at_least(s4, None if s2 is None else s2 + GAIN_TARGET)
    return {
        **damage_numbers(s1, s2),
        "s4": s4,
        "side_effect": side,
        "gain": _difference(s4, s2),
        "recovery_ratio": _ratio(s4, s1),
        "recovered_fraction": _ratio(_difference(s4, s2), _difference(s1, s2)),
        "side_effect_delta": _difference(side, s1),
        "retains_80pct": retains,
        "gains_5pts": gains,
        "success": _both(retains, gains),
    }


def _check_same_tasks(named: Mapping[str, Mapping | None]) -> tuple[str, ...]:
    """The shared task list; ValueError when evaluations of different task sets are compared.

    A metrics dict with no tasks (only a macro, as some published rows) is accepted.
    """
    task_lists = {name: tuple(m["tasks"]) for name, m in named.items() if m is not None and m["tasks"]}
    reference = next(iter(task_lists.values()), ())
    for name, tasks in task_lists.items():
        if set(tasks) != set(reference):
            raise ValueError(
                f"{name} has tasks {', '.join(tasks)}, the others {', '.join(reference)}; compare one task set"
            )
    return reference


def ablation_damage(stage1: Mapping, stage2: Mapping) -> dict:
    """Damage and retention per task and for the macro: ``{"macro": {...}, "tasks": {task: {...}}}``."""
    tasks = _check_same_tasks({"stage1": stage1, "stage2": stage2})
    return {
        "macro": damage_numbers(stage1["macro_acc"], stage2["macro_acc"]),
        "tasks": {task: damage_numbers(task_acc(stage1, task), task_acc(stage2, task)) for task in tasks},
    }


def derived_numbers(stage1: Mapping, stage2: Mapping, stage4: Mapping, side_effect: Mapping | None = None) -> dict:
    """All derived numbers per task and for the macro: ``{"macro": {...}, "tasks": {task: {...}}}``.

    Each inner dict holds s1, s2, s4, side_effect, damage, retention, gain, recovery_ratio,
    recovered_fraction, side_effect_delta, retains_80pct, gains_5pts and success.
    """
    tasks = _check_same_tasks({"stage1": stage1, "stage2": stage2, "stage4": stage4, "side_effect": side_effect})
    side_macro = None if side_effect is None else side_effect["macro_acc"]
    return {
        "macro": recovery_numbers(stage1["macro_acc"], stage2["macro_acc"], stage4["macro_acc"], side_macro),
        "tasks": {
            task: recovery_numbers(
                task_acc(stage1, task), task_acc(stage2, task), task_acc(stage4, task), task_acc(side_effect, task)
            )
            for task in tasks
        },
    }


def macro_stderr(metrics: Mapping) -> float | None:
    """Standard error of the macro accuracy, the tasks taken as independent samples."""
    errors = [entry.get("acc_stderr") for entry in metrics["tasks"].values()]
    if not errors or any(error is None for error in errors):
        return None
    return math.sqrt(sum(error**2 for error in errors)) / len(errors)


def derived_by_run(study: Study, what: str = "the derived numbers") -> dict[str, dict]:
    """``derived_numbers`` of every run with a Stage 4 evaluation, by run name."""
    study.require(what, STAGE1, STAGE2)
    return {
        run.name: derived_numbers(study.stage1, study.stage2, run.ablated, run.causal)
        for run in study.stage4_runs(what)
    }
