"""The original study's published numbers (its Stage 1-5 results tables), for side-by-side reports.

The original ablated with an ``is_causal=False`` patch that also let the scored continuation
tokens see each other and the future, so its Stage 2 and Stage 4 rows measure what this
workflow calls ``full_bidir``, not the clean ``prefill_bidir`` ablation. Values are as published
(macros to ten decimals, tasks to three or four); the published macro is authoritative where the
rounded task values do not average to it exactly.

They measure the original's prompts, tokenization (no BOS) and metric (argmax of the mean
log-probability per continuation token), so they are put beside evaluations of the ``original``
task set only, in its ``acc_per_token``. A fine-tune is put beside the published run of its
length (``published_run``): the 3B row is Stage 4, the longer ones Stage 5. One that stopped
before its configured steps repeats none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from ablation.prefill.report.study import FinetuneRun, display_task, stopped_early

ORIGINAL_TASKS = ("hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande")

# condition -> (table row, macro acc, per-task acc in ORIGINAL_TASKS order or None where unpublished)
ORIGINAL_RESULTS = {
    "stage1": ("Stage 1 baseline, causal", 0.6950568562, (0.622, 0.788, 0.814, 0.585284, 0.666)),
    "stage2": ("Stage 2 ablated (full_bidir patch), no FT", 0.3558976000, (0.242, 0.534, 0.238, 0.247492, 0.518)),
    "stage4": ("Stage 4 ablated (full_bidir patch), after 3B FT", 0.4086983278, (0.324, 0.616, 0.352, 0.2475, 0.504)),
    "side_effect": ("3B FT, evaluated causal", 0.6199344482, None),
}

# run, steps, epochs, final eval loss (3B's published as "~1.16"), non-ablated macro, ablated macro
ORIGINAL_STAGE5 = (
    ("vanilla", 0, 0.0, None, 0.695, 0.356),
    ("3B", 1200, 0.38, 1.16, 0.620, 0.409),
    ("5C", 6500, 2.08, 1.283, 0.591, 0.407),
    ("5B", 10000, 3.20, 1.638, 0.548, 0.383),
)


def published_run(run: FinetuneRun) -> str | None:
    """The published Stage 5 row a fine-tune repeats: trained prefill_bidir for as many steps, all it was configured for."""
    if run.train_mask != "prefill_bidir" or run.summary is None or stopped_early(run.summary):
        return None
    steps = run.summary.get("steps_run")
    return next((name for name, published_steps, *_ in ORIGINAL_STAGE5[1:] if published_steps == steps), None)


def _per_token_macro(metrics: Mapping | None) -> float | None:
    return None if metrics is None else metrics.get("macro_acc_per_token")


def original_metrics(condition: str) -> dict:
    """A published row as a metrics dict (acc only), so it goes through the same derivations."""
    _, macro, accs = ORIGINAL_RESULTS[condition]
    tasks = {} if accs is None else {task: {"acc": acc} for task, acc in zip(ORIGINAL_TASKS, accs)}
    return {"tasks": tasks, "macro_acc": macro, "task_set": "real"}


def original_results_table() -> pd.DataFrame:
    """The published results table: macro and per-task accuracy per condition."""
    rows = []
    for label, macro, accs in ORIGINAL_RESULTS.values():
        per_task = dict.fromkeys(map(display_task, ORIGINAL_TASKS)) if accs is None else dict(zip(ORIGINAL_TASKS, accs))
        rows.append({"condition": label, "macro acc": macro, **per_task})
    return pd.DataFrame(rows)


def original_comparison_table(
    stage1: Mapping, full_bidir: Mapping | None, runs: Iterable[FinetuneRun] = ()
) -> pd.DataFrame:
    """The published rows of Stages 1, 2 and 4, each followed by this study's evaluations of the same
    condition on the ``original`` task set, in the original's metric (``acc_per_token``, macro and per task).

    The published Stage 2 and Stage 4 ran the ``full_bidir`` patch, so they are paired with the
    ``full_bidir`` evaluations: of the base model, and of each fine-tune that repeats the 3B run
    (``published_run``); one that is missing is left out.
    """
    stage4 = [(run.full_bidir, f"after FT {run.name}") for run in runs if published_run(run) == "3B"]
    rows = []
    for condition, ours in (("stage1", [(stage1, "")]), ("stage2", [(full_bidir, "")]), ("stage4", stage4)):
        label, macro, accs = ORIGINAL_RESULTS[condition]
        rows.append({"condition": f"{label} (published)", "macro": macro, **dict(zip(ORIGINAL_TASKS, accs))})
        for metrics, which in ours:
            if metrics is None:
                continue
            per_task = {display_task(task): entry.get("acc_per_token") for task, entry in metrics["tasks"].items()}
            rows.append(
                {
                    "condition": f"{label} (this study{', ' + which if which else ''})",
                    "macro": _per_token_macro(metrics),
                    **{task: per_task.get(task) for task in ORIGINAL_TASKS},
                }
            )
    return pd.DataFrame(rows)


def _unpaired_note(summary: Mapping) -> str:
    if not stopped_early(summary):
        return ", no published run this long"
    return f", stopped at {summary['steps_run']} of {summary['max_steps']} steps ({summary.get('stop_reason')}), repeats no published run"


def original_stage5_table(runs: Iterable[FinetuneRun] = ()) -> pd.DataFrame:
    """The published Stage 5 table; each published run followed by this study's fine-tunes that repeat it
    (``published_run``), and at the end the other prefill_bidir fine-tunes, all with their causal and
    full_bidir evaluations in ``acc_per_token``."""
    columns = ["run", "steps", "epochs", "final eval loss", "non-ablated (causal)", "ablated (full_bidir patch)"]
    runs = [run for run in runs if run.train_mask == "prefill_bidir" and run.summary is not None]

    def ours(run: FinetuneRun, note: str) -> dict:
        summary = run.summary
        values = (
            f"{run.name} (this study{note})",
            summary.get("steps_run"),
            summary.get("epochs"),
            summary.get("final_eval_loss"),
            _per_token_macro(run.causal),
            _per_token_macro(run.full_bidir),
        )
        return dict(zip(columns, values))

    rows = []
    for published in ORIGINAL_STAGE5:
        rows.append(dict(zip(columns, published)))
        rows += [ours(run, "") for run in runs if published_run(run) == published[0]]
    rows += [ours(run, _unpaired_note(run.summary)) for run in runs if published_run(run) is None]
    return pd.DataFrame(rows, columns=columns)
