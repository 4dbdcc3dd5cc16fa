"""The on-disk format of a bridge run, shared by trained runs and imported legacy runs.

A run directory holds one ``eval_samples_step_{N|final}.jsonl`` per evaluation (the legacy
field names, one object per question), ``history.jsonl`` (one row per evaluation, in step
order, computed from those samples by ``history_row``) and ``summary.json``. Accuracy is
recomputed from the extracted answers, never copied from a log: GSM8K counts exact string
matches, HotpotQA reports mean exact match as accuracy and mean token F1 as ``*_f1``.
"""

from __future__ import annotations

import re

from ablation.bridge.answers import INVALID, score_extracted
from ablation.layout import LOSS_HISTORY_FILE, SUMMARY_FILE  # noqa: F401 - part of a run's format

SIDES = ("source", "target", "bridged")  # source alone, target alone, target reading the soft tokens
FINAL_STEP = "final"  # the evaluation of the kept (best) translator after training
HISTORY_FILE = "history.jsonl"
TRANSLATOR_FILE = "translator.pt"  # a trained run's translator weights
# LOSS_HISTORY_FILE: training losses by step (a legacy run's: the log's windowed means)
SAMPLES_FILE = "eval_samples_step_{step}.jsonl"
SAMPLES_NAME = re.compile(r"eval_samples_step_(\d+|final)\.jsonl")

SAMPLE_FIELDS = (
    "eval_step", "index", "question", "gold_full_text", "gold_extracted",
    *(f"{side}_{kind}" for side in SIDES for kind in ("full", "extracted")),
)
SCORED_FIELDS = ("gold_extracted", *(f"{side}_extracted" for side in SIDES))
# HotpotQA rows add "{side}_f1"; new runs add a "losses" dict
HISTORY_FIELDS = ("step", *(f"{side}_acc" for side in SIDES), "samples", "invalid")
SUMMARY_FIELDS = (
    "run", "study", "origin", "role", "settings", "dataset", "prompts", "scoring", "source_acc", "target_acc",
    "peak_bridged_acc", "peak_step", "final_bridged_acc", "degradation", "stop_reason", "wall_seconds",
    "soft_tokens", "resolved_soft_tokens", "steps_evaluated", "invalid_per_step", "log_check", "provenance", "notes",
)


def samples_filename(step: int | str) -> str:
    return SAMPLES_FILE.format(step=step)


def samples_step(filename: str) -> int | str | None:
    """The step a samples file belongs to (an int or ``"final"``); None for any other name."""
    match = SAMPLES_NAME.fullmatch(filename)
    if match is None:
        return None
    return FINAL_STEP if match.group(1) == FINAL_STEP else int(match.group(1))


def step_order(step: int | str) -> tuple[int, int]:
    """Sort key: numbered steps ascending, then the final evaluation."""
    return (1, 0) if step == FINAL_STEP else (0, step)


def trained_evaluations(history: list[dict]) -> list[dict]:
    """The evaluations a run's peak is read from: those of a trained translator, after step 0 (the
    untrained one is a reference) and before the final evaluation; the whole history when it has no
    such evaluation (a log cut short)."""
    return [row for row in history if row["step"] not in (0, FINAL_STEP)] or history


def history_row(step: int | str, rows: list[dict], dataset: str) -> dict:
    """One ``history.jsonl`` row from an evaluation's sample rows: accuracy per side and invalid counts."""
    if not rows:
        raise ValueError(f"evaluation at step {step!r} has no samples")
    row = {"step": step}
    f1 = {}
    missing = [side for side in SIDES if all(f"{side}_extracted" not in sample for sample in rows)]  # older legacy logs: no source side
    for side in missing:
        row[f"{side}_acc"] = None
    for side in (side for side in SIDES if side not in missing):
        scores = [score_extracted(dataset, sample[f"{side}_extracted"], sample["gold_extracted"]) for sample in rows]
        row[f"{side}_acc"] = sum(s["correct"] for s in scores) / len(scores)
        if dataset == "hotpotqa":
            f1[f"{side}_f1"] = sum(s["f1"] for s in scores) / len(scores)
    row.update(f1)
    row["samples"] = len(rows)
    row["invalid"] = {side: None if side in missing else sum(sample[f"{side}_extracted"] == INVALID for sample in rows) for side in SIDES}
    return row
