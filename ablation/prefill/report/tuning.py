"""The fine-tune tuning report: the grid's dev-split table and the chosen settings (``ablation.prefill.tuning``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ablation.io import atomic_write_json
from ablation.layout import TUNING_BASE_KEY, TUNING_MASKS, TUNING_TABLE, TUNING_TRIAL_KEY
from ablation.prefill.report.study import load_metrics
from ablation.prefill.tuning import CRITERION, TUNED_KEYS, Choice, TrialResult, choose_trial
from ablation.writers import TableStyle, write_table

log = logging.getLogger(__name__)

TUNING_STYLE = TableStyle(labels=frozenset({"trial", "chosen"}), formats={"learning_rate": "g", "replay_fraction": "g"})


def load_results(
    inputs: Mapping[str, str | Path], trials: Mapping[str, Mapping], runs: Iterable[str]
) -> tuple[dict[str, float], list[TrialResult]]:
    """The base model's dev macro accuracy per mask, and every trial's, from the keyed evaluations."""
    runs = list(runs)

    def macro_acc(key: str, mask: str) -> float:
        return load_metrics(inputs[key], expected_mask=mask)["macro_acc"]

    def accuracies(trial: str, mask: str) -> dict[str, float]:
        return {run: macro_acc(TUNING_TRIAL_KEY.format(trial=trial, run=run, mask=mask), mask) for run in runs}

    base = {mask: macro_acc(TUNING_BASE_KEY.format(mask=mask), mask) for mask in TUNING_MASKS}

    results = [
        TrialResult(trial, dict(settings), accuracies(trial, "prefill_bidir"), accuracies(trial, "causal"))
        for trial, settings in trials.items()
    ]
    return base, results


def grid_table(results: Sequence[TrialResult], base: Mapping[str, float], choice: Choice, max_side_effect: float) -> pd.DataFrame:
    """One row per grid point: its settings, each run's dev prefill_bidir accuracy and causal loss."""
    rows = []
    for result in results:
        row = {"trial": result.trial, **{key: result.settings[key] for key in TUNED_KEYS}}
        for run in result.prefill:
            row[f"prefill_bidir {run}"] = result.prefill[run]
            row[f"causal Δ {run}"] = result.causal[run] - base["causal"]
        row["mean prefill_bidir"] = result.mean_prefill
        row["keeps knowledge"] = result.keeps_knowledge(base["causal"], max_side_effect)
        row["chosen"] = "✓" if result is choice.result else ""
        rows.append(row)
    return pd.DataFrame(rows)


def write_tuning_report(
    inputs: Mapping[str, str | Path],
    trials: Mapping[str, Mapping],
    runs: Iterable[str],
    max_side_effect: float,
    out_dir: str | Path,
    stamp: Callable[[], dict],
) -> Choice:
    """Write ``finetune_grid.{csv,md,tex}`` and ``finetune_choice.json`` (the chosen settings) to ``out_dir``.

    ``stamp`` makes the provenance record once the choice is made, so its wall time covers the job's work.
    """
    base, results = load_results(inputs, trials, runs)
    choice = choose_trial(results, base["causal"], max_side_effect)
    out_dir = Path(out_dir)
    write_table(grid_table(results, base, choice, max_side_effect), out_dir / TUNING_TABLE, TUNING_STYLE)
    chosen = choice.result
    if not choice.keeps_knowledge:
        log.warning("no grid point keeps every run within %.3f under causal eval; chose the gentlest", max_side_effect)
    atomic_write_json(
        out_dir / "finetune_choice.json",
        {
            "chosen": chosen.trial,
            "settings": dict(chosen.settings),
            "keeps_knowledge": choice.keeps_knowledge,
            "max_side_effect": max_side_effect,
            "criterion": CRITERION,
            "base_dev_macro_acc": base,
            "dev_prefill_bidir": dict(chosen.prefill),
            "dev_causal_delta": {run: value - base["causal"] for run, value in chosen.causal.items()},
            "trials": len(results),
            "provenance": stamp(),
        },
    )
    log.info("chose %s (dev prefill_bidir mean %.4f)", chosen.trial, chosen.mean_prefill)
    return choice
