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

LaTeX is booktabs ``tabular`` only (no float environment), ready for ``\\input`` in the paper.
The writers take a ``TableStyle`` (text columns, number formats), so other studies' tables
(``ablation.bridge.report``) are written by the same code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablation.io import atomic_write_text
from ablation.prefill.report.derived import derived_by_run
from ablation.prefill.report.study import STAGE1, STAGE2, Study, display_task, task_acc

log = logging.getLogger(__name__)

TABLE_FORMATS = ("csv", "md", "tex")
MISSING = "–"
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


@dataclass(frozen=True)
class TableStyle:
    """How a table is displayed: its text columns (left-aligned) and each number column's format."""

    labels: frozenset[str]
    formats: Mapping[str, str]
    number_format: str = ".4f"  # numbers in any other column


PREFILL_STYLE = TableStyle(LABEL_COLUMNS, COLUMN_FORMATS)
LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "–": "--",
    "−": "$-$",
    "×": r"$\times$",
    "Δ": r"$\Delta$",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


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


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(column: str, value, style: TableStyle = PREFILL_STYLE) -> str:
    """A cell as displayed: numbers rounded by column, booleans as pass/fail, missing as a dash."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, style.formats.get(column, style.number_format))
    return str(value)


def display_table(table: pd.DataFrame, style: TableStyle = PREFILL_STYLE) -> pd.DataFrame:
    """The table with every cell formatted for Markdown and LaTeX."""
    # .tolist() turns numpy scalars into the Python bool/int/float format_value dispatches on
    return pd.DataFrame(
        {column: [format_value(column, v, style) for v in table[column].tolist()] for column in table.columns}
    )


def _alignments(table: pd.DataFrame, style: TableStyle) -> list[str]:
    return ["left" if column in style.labels else "right" for column in table.columns]


def markdown_table(table: pd.DataFrame, style: TableStyle = PREFILL_STYLE) -> str:
    """GitHub Markdown of the formatted table; numbers right-aligned."""
    # numparse off: the cells are already rounded, tabulate must not re-round them
    return display_table(table, style).to_markdown(
        index=False, colalign=_alignments(table, style), disable_numparse=True
    )


def latex_escape(text: str) -> str:
    """Text safe in a LaTeX table cell."""
    return "".join(LATEX_ESCAPES.get(character, character) for character in str(text))


def latex_table(table: pd.DataFrame, style: TableStyle = PREFILL_STYLE) -> str:
    """A booktabs ``tabular`` of the formatted table."""
    spec = "".join("l" if align == "left" else "r" for align in _alignments(table, style))
    body = display_table(table, style)
    lines = [
        "% generated by the workflow's report from the study's result files; do not edit",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(column) for column in table.columns) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in body.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: str | Path, style: TableStyle = PREFILL_STYLE) -> list[Path]:
    """Write ``<stem>.csv``, ``.md`` and ``.tex``, each atomically; return their paths."""
    stem = Path(stem)
    texts = {
        "csv": table.to_csv(index=False),
        "md": markdown_table(table, style) + "\n",
        "tex": latex_table(table, style),
    }
    return [atomic_write_text(stem.with_name(f"{stem.name}.{fmt}"), texts[fmt]) for fmt in TABLE_FORMATS]


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
    written = [path for name, table in tables.items() for path in write_table(table, Path(out_dir) / name)]
    log.info("wrote %d table files to %s", len(written), out_dir)
    return written
