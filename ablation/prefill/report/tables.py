"""The study's tables as DataFrames, written as CSV (numbers at full precision), Markdown and LaTeX.

Four tables, each named by the stem of its files (``<out_dir>/<name>.{csv,md,tex}``):

- ``stages``: one row per evaluation (Stage 1, Stage 2 prefill_bidir and full_bidir, Stage 4 per
  fine-tune, side effects) with macro acc, macro acc_norm, chance and per-task acc, like the
  original study's results table.
- ``derived``: per fine-tune, the derived numbers of ``ablation.prefill.report.derived`` on the macro.
- ``per_task``: task x evaluation, ``acc ± stderr``.
- ``stage5``: every fine-tune run with steps, epochs, eval loss, its causal ("non-ablated") and
  prefill_bidir ("ablated") macro, its full_bidir macro (the original's "ablated" mask) where
  evaluated, and stop reason, after a "vanilla" row for the base model, like the original's
  Stage 5 table.

The files are written by ``ablation.writers`` (LaTeX as booktabs ``tabular``, ready for
``\\input`` in the paper) in this study's ``PREFILL_STYLE``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pandas as pd

from ablation.prefill.report.derived import derived_by_run
from ablation.prefill.report.study import STAGE1, STAGE2, Study, display_task, task_acc
from ablation.writers import MISSING, TableStyle, write_table

log = logging.getLogger(__name__)

# Columns holding text; every other column is a number and is right-aligned.
LABEL_COLUMNS = frozenset({"condition", "model", "eval mask", "run", "train mask", "stop reason", "task"})
# Display formats by column; other numbers get 4 decimals, as the original's macro column.
COLUMN_FORMATS = {
    "damage": "+.4f",
    "gain": "+.4f",
    "side-effect delta": "+.4f",
    "recovered fraction": ".1%",
    "epochs": ".2f",
}



PREFILL_STYLE = TableStyle(LABEL_COLUMNS, COLUMN_FORMATS)


def _require_conditions(study: Study, what: str):
    conditions = study.conditions()
    if not conditions:
        raise ValueError(f"{what} needs at least one evaluation; the study has none")
    return conditions


def stage_table(study: Study) -> pd.DataFrame:
    """One row per evaluation: macro acc, macro acc_norm, chance and per-task acc."""
    tasks = study.tasks
    rows = [
        {
            "condition": condition.label,
            "model": condition.model,
            "eval mask": condition.mask,
            "macro acc": condition.metrics["macro_acc"],
            "macro acc_norm": condition.metrics.get("macro_acc_norm"),
            "chance": condition.metrics.get("chance_macro"),
            **{display_task(task): task_acc(condition.metrics, task) for task in tasks},
        }
        for condition in _require_conditions(study, "the stage table")
    ]
    return pd.DataFrame(rows)


def derived_table(study: Study) -> pd.DataFrame:
    """Per fine-tune with a Stage 4 evaluation: the macro derived numbers and success criteria."""
    derived = derived_by_run(study, "the derived table")
    runs = {run.name: run for run in study.runs}
    rows = []
    for name, numbers in derived.items():
        macro = numbers["macro"]
        rows.append(
            {
                "run": name,
                "train mask": runs[name].train_mask,
                "Stage 1": macro["s1"],
                "Stage 2": macro["s2"],
                "Stage 4": macro["s4"],
                "damage": macro["damage"],
                "retention": macro["retention"],
                "gain": macro["gain"],
                "recovery ratio": macro["recovery_ratio"],
                "recovered fraction": macro["recovered_fraction"],
                "side-effect delta": macro["side_effect_delta"],
                "retains 80%": macro["retains_80pct"],
                "gains 5 pts": macro["gains_5pts"],
                "success": macro["success"],
            }
        )
    return pd.DataFrame(rows)


def _with_stderr(entry: Mapping | None) -> str:
    if not entry or entry.get("acc") is None:
        return MISSING
    stderr = entry.get("acc_stderr")
    return f"{entry['acc']:.3f}" if stderr is None else f"{entry['acc']:.3f} ± {stderr:.3f}"


def per_task_table(study: Study) -> pd.DataFrame:
    """Task x evaluation, ``acc ± stderr``, with each task's chance and a closing macro row."""
    conditions = _require_conditions(study, "the per-task table")
    reference = conditions[0].metrics
    rows = [
        {
            "task": display_task(task),
            "chance": (reference["tasks"].get(task) or {}).get("chance"),
            **{c.short: _with_stderr(c.metrics["tasks"].get(task)) for c in conditions},
        }
        for task in study.tasks
    ]
    rows.append(
        {
            "task": "macro",
            "chance": reference.get("chance_macro"),
            **{c.short: f"{c.metrics['macro_acc']:.3f}" for c in conditions},
        }
    )
    return pd.DataFrame(rows)


def stage5_table(study: Study) -> pd.DataFrame:
    """Every fine-tune run with a summary, after the base model as the 0-step "vanilla" row."""
    what = "the Stage 5 table"
    study.require(what, STAGE1, STAGE2)
    rows = [
        {
            "run": "vanilla (base model)",
            "train mask": None,
            "steps": 0,
            "epochs": 0.0,
            "final eval loss": None,
            "best eval loss": None,
            "non-ablated (causal)": study.stage1["macro_acc"],
            "ablated (prefill_bidir)": study.stage2["macro_acc"],
            "stop reason": None,
        }
    ]
    runs = study.summarised_runs(what)
    for run in runs:
        summary = run.summary
        rows.append(
            {
                "run": run.name,
                "train mask": run.train_mask,
                "steps": summary.get("steps_run"),
                "epochs": summary.get("epochs"),
                "final eval loss": summary.get("final_eval_loss"),
                "best eval loss": summary.get("best_eval_loss"),
                "non-ablated (causal)": None if run.causal is None else run.causal["macro_acc"],
                "ablated (prefill_bidir)": None if run.ablated is None else run.ablated["macro_acc"],
                "stop reason": summary.get("stop_reason"),
            }
        )
    table = pd.DataFrame(rows).astype({"steps": "Int64"})
    if any(run.full_bidir is not None for run in runs):
        column = [None if study.full_bidir is None else study.full_bidir["macro_acc"]]
        column += [None if run.full_bidir is None else run.full_bidir["macro_acc"] for run in runs]
        table.insert(table.columns.get_loc("stop reason"), "ablated (full_bidir)", column)
    return table


TABLES: dict[str, Callable[[Study], pd.DataFrame]] = {
    "stages": stage_table,
    "derived": derived_table,
    "per_task": per_task_table,
    "stage5": stage5_table,
}
TABLE_NAMES = tuple(TABLES)



def write_tables(study: Study, out_dir: str | Path, names: Iterable[str] = TABLE_NAMES) -> list[Path]:
    """Build the named tables (all by default) and write each as CSV, Markdown and LaTeX.

    Every table is built before any file is written, so a study that lacks what one table
    needs raises ValueError and leaves ``out_dir`` untouched.
    """
    names = tuple(names)
    unknown = [name for name in names if name not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLE_NAMES)}")
    tables = {name: TABLES[name](study) for name in names}
    written = [path for name, table in tables.items() for path in write_table(table, Path(out_dir) / name, PREFILL_STYLE)]
    log.info("wrote %d table files to %s", len(written), out_dir)
    return written
