"""The study a report is built from: which evaluations and fine-tune runs exist, loaded from their files.

Reports only read what the workflow already wrote: the ``metrics.json`` of each evaluation and
the ``summary.json`` / ``loss_history.csv`` of each fine-tune run. A Snakemake rule names them in
one flat mapping, condition key -> path (``dict(snakemake.input.items())``):

===============================  =========================================================
key                              file
===============================  =========================================================
``stage1``                       eval(base, causal) ``metrics.json``: the baseline
``stage2_prefill_bidir``         eval(base, prefill_bidir): the clean prefill ablation
``stage2_full_bidir``            eval(base, full_bidir): the original study's leaky patch
``stage4_<run>``                 eval(<run>, prefill_bidir): ablated after the fine-tune
``side_effect_<run>``            eval(<run>, causal): the fine-tune without the ablation
``full_bidir_after_ft_<run>``    eval(<run>, full_bidir): the original's Stage 4 mask
``finetune_<run>``               <run>'s ``summary.json`` (``loss_history.csv`` is read beside it)
===============================  =========================================================

Every key is optional when loading; each table, figure or page checks what it needs and raises a
ValueError naming the missing keys. ``study_paths`` builds the mapping for the standard layout
``<results>/eval/<model>/<mask>/metrics.json`` and ``<results>/finetune/<run>/summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablation.io import CorruptFileError, read_json
from ablation.provenance import check_one_library_code as check_one_library_code_of
from ablation.layout import (  # noqa: F401 - re-exported: the report's condition keys and layout
    FINETUNE_PREFIX,
    FULL_BIDIR,
    FULL_BIDIR_AFTER_FT_PREFIX,
    LOSS_HISTORY_FILE,
    SIDE_EFFECT_PREFIX,
    STAGE1,
    STAGE2,
    STAGE4_PREFIX,
    SUMMARY_FILE,
    study_paths,
)

# The mask each evaluation key must have been run with, checked against the metrics' provenance
# so a miswired input fails here rather than as a plausible-looking wrong table.
BASE_MASKS = {STAGE1: "causal", STAGE2: "prefill_bidir", FULL_BIDIR: "full_bidir"}
RUN_EVAL_MASKS = {STAGE4_PREFIX: "prefill_bidir", SIDE_EFFECT_PREFIX: "causal", FULL_BIDIR_AFTER_FT_PREFIX: "full_bidir"}
RUN_EVAL_FIELDS = {STAGE4_PREFIX: "ablated", SIDE_EFFECT_PREFIX: "causal", FULL_BIDIR_AFTER_FT_PREFIX: "full_bidir"}
LOSS_HISTORY_COLUMNS = ("step", "eval_loss")


STOP_REASONS = {
    "max_steps": "reached max_steps",
    "auto_stop_plateau": "auto-stopped: eval-loss plateau",
    "no_learning": "stopped: no learning",
}


def stop_reason_label(reason: str | None) -> str:
    """A summary's stop_reason in words."""
    return STOP_REASONS.get(reason, reason or "unknown")


def stopped_early(summary: Mapping) -> bool:
    """Whether a fine-tune ended before its configured steps: a stop rule cut it short."""
    return summary.get("steps_run") != summary.get("max_steps")


def task_acc(metrics: Mapping | None, task: str) -> float | None:
    """A task's acc in a metrics dict; None when the evaluation, the task or its acc is missing."""
    if metrics is None:
        return None
    return (metrics["tasks"].get(task) or {}).get("acc")


def display_task(task: str) -> str:
    """Task name as shown in reports: the tiny world's and the original set's tasks lose their prefix."""
    return task.removeprefix("tiny_").removeprefix("original_")


@dataclass(frozen=True, eq=False)
class FinetuneRun:
    """One fine-tune run and whatever of its outputs and evaluations exist."""

    name: str
    train_mask: str | None = None
    summary: Mapping | None = None  # summary.json
    loss_history: pd.DataFrame | None = None  # loss_history.csv, NaN where a loss was not logged
    ablated: Mapping | None = None  # eval(run, prefill_bidir) metrics: Stage 4
    causal: Mapping | None = None  # eval(run, causal) metrics: the side effect
    full_bidir: Mapping | None = None  # eval(run, full_bidir) metrics: the original's Stage 4 mask

    @property
    def label(self) -> str:
        return f"{self.name} (train {self.train_mask or '?'})"


@dataclass(frozen=True)
class Condition:
    """One evaluation shown in tables and figures: a (model, mask) pair and its metrics."""

    key: str
    label: str  # table row
    short: str  # legend entry
    model: str
    mask: str
    metrics: Mapping
    run: str | None = None


@dataclass(frozen=True, eq=False)
class Study:
    """The base model's evaluations and the fine-tune runs, in the order they were given."""

    stage1: Mapping | None = None
    stage2: Mapping | None = None  # prefill_bidir: the clean ablation
    full_bidir: Mapping | None = None  # the original study's patch, a reference row
    runs: tuple[FinetuneRun, ...] = ()
    sources: Mapping[str, Path] = field(default_factory=dict)  # condition key -> file, for links
    experiment: str | None = None

    def require(self, what: str, *keys: str) -> None:
        """Raise ValueError naming the base evaluations ``what`` needs and the study lacks."""
        present = {STAGE1: self.stage1, STAGE2: self.stage2, FULL_BIDIR: self.full_bidir}
        missing = [key for key in keys if present[key] is None]
        if missing:
            raise ValueError(f"{what} needs the evaluations {', '.join(keys)}; missing: {', '.join(missing)}")

    def stage4_runs(self, what: str) -> tuple[FinetuneRun, ...]:
        """The runs with a Stage 4 (ablated) evaluation; ValueError when there is none."""
        runs = tuple(run for run in self.runs if run.ablated is not None)
        if not runs:
            raise ValueError(f"{what} needs at least one Stage 4 evaluation ({STAGE4_PREFIX}<run>); there is none")
        return runs

    def summarised_runs(self, what: str) -> tuple[FinetuneRun, ...]:
        """The runs with a summary.json; ValueError when there is none."""
        runs = tuple(run for run in self.runs if run.summary is not None)
        if not runs:
            raise ValueError(f"{what} needs at least one fine-tune run ({FINETUNE_PREFIX}<run>); there is none")
        return runs

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names in the order of the first evaluation present (Stage 1 first)."""
        for condition in self.conditions():
            if condition.metrics.get("tasks"):
                return tuple(condition.metrics["tasks"])
        return ()

    def conditions(self) -> list[Condition]:
        """Every evaluation present, in report order: base model, Stage 4 (prefill_bidir, then full_bidir), side effects."""
        base = [
            (STAGE1, self.stage1, "Stage 1 baseline, causal", "Stage 1 baseline (causal)"),
            (STAGE2, self.stage2, "Stage 2 ablated (prefill_bidir), no FT", "Stage 2 ablated (prefill_bidir)"),
            (
                FULL_BIDIR,
                self.full_bidir,
                "Stage 2 full_bidir (original patch), no FT",
                "Stage 2 full_bidir (original patch)",
            ),
        ]
        conditions = [
            Condition(key, label, short, "base", BASE_MASKS[key], metrics)
            for key, metrics, label, short in base
            if metrics is not None
        ]
        after_finetune = (  # key prefix, label and short label of a run's evaluation, in report order
            (STAGE4_PREFIX, "Stage 4 ablated (prefill_bidir), after FT {}", "Stage 4: {}"),
            (FULL_BIDIR_AFTER_FT_PREFIX, "Stage 4 full_bidir (original patch), after FT {}", "Stage 4 full_bidir: {}"),
            (SIDE_EFFECT_PREFIX, "Side effect: FT {}, evaluated causal", "side effect: {}, causal"),
        )
        conditions += [
            Condition(
                prefix + run.name,
                label.format(run.label),
                short.format(run.label),
                run.name,
                RUN_EVAL_MASKS[prefix],
                getattr(run, RUN_EVAL_FIELDS[prefix]),
                run.name,
            )
            for prefix, label, short in after_finetune
            for run in self.runs
            if getattr(run, RUN_EVAL_FIELDS[prefix]) is not None
        ]
        return conditions


def load_metrics(path: str | Path, expected_mask: str | None = None) -> dict:
    """Read one evaluation's metrics.json, checking its shape and (when recorded) its mask."""
    path = Path(path)
    metrics = read_json(path)
    missing = [key for key in ("tasks", "macro_acc") if key not in metrics]
    if missing:
        raise CorruptFileError(path, f"not an evaluation's metrics.json: no {', '.join(missing)}")
    recorded = (metrics.get("provenance") or {}).get("mask")
    if expected_mask is not None and recorded is not None and recorded != expected_mask:
        raise ValueError(f"{path} was evaluated with mask {recorded!r}, but is given as a {expected_mask!r} evaluation")
    return metrics


def load_loss_history(path: str | Path) -> pd.DataFrame:
    """Read a run's loss_history.csv; losses not logged at a step read as NaN."""
    history = pd.read_csv(path)
    missing = [column for column in LOSS_HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
    return history


def _summary_file(path: Path) -> Path:
    return path / SUMMARY_FILE if path.is_dir() else path


def _parse_key(key: str) -> tuple[str, str | None]:
    """Split a condition key into (kind, run name); kind is a base key or a run prefix."""
    if key in BASE_MASKS:
        return key, None
    prefixes = (*RUN_EVAL_MASKS, FINETUNE_PREFIX)
    for prefix in prefixes:
        if key.startswith(prefix) and len(key) > len(prefix):
            return prefix, key[len(prefix) :]
    allowed = [*BASE_MASKS, *(f"{prefix}<run>" for prefix in prefixes)]
    raise ValueError(f"unknown condition key {key!r}; allowed: {', '.join(allowed)}")


def _train_mask(run: str, summary: Mapping | None, configured: str | None) -> str | None:
    recorded = summary.get("train_mask") if summary else None
    if recorded and configured and recorded != configured:
        raise ValueError(f"run {run!r} trained with mask {recorded!r} but is configured with {configured!r}")
    return recorded or configured


def load_study(
    paths: Mapping[str, str | Path],
    *,
    train_masks: Mapping[str, str] | None = None,
    experiment: str | None = None,
) -> Study:
    """Load a study from a mapping condition key -> file (see the module docstring for the keys).

    ``train_masks`` (run -> train mask, e.g. from the config's ``finetune.runs``) names the train
    mask of runs whose summary.json is not among the inputs, and is checked against it when it is.
    """
    train_masks = dict(train_masks or {})
    base: dict[str, dict] = {}
    per_run: dict[str, dict] = {}
    sources: dict[str, Path] = {}
    for key, raw_path in paths.items():
        kind, run = _parse_key(key)
        path = Path(raw_path)
        if run is None:
            base[kind] = load_metrics(path, BASE_MASKS[kind])
            sources[key] = path
            continue
        entry = per_run.setdefault(run, {})
        if kind == FINETUNE_PREFIX:
            summary_path = _summary_file(path)
            entry["summary"] = read_json(summary_path)
            history = summary_path.parent / LOSS_HISTORY_FILE
            entry["loss_history"] = load_loss_history(history) if history.exists() else None
            sources[key] = summary_path
        else:
            entry[RUN_EVAL_FIELDS[kind]] = load_metrics(path, RUN_EVAL_MASKS[kind])
            sources[key] = path
    runs = tuple(
        FinetuneRun(name=name, train_mask=_train_mask(name, entry.get("summary"), train_masks.get(name)), **entry)
        for name, entry in per_run.items()
    )
    return Study(
        stage1=base.get(STAGE1),
        stage2=base.get(STAGE2),
        full_bidir=base.get(FULL_BIDIR),
        runs=runs,
        sources=sources,
        experiment=experiment,
    )


def check_one_library_code(study: Study, allow_mixed: bool = False) -> dict[str, list[str]]:
    """The study's evaluations grouped by the library code that made them; ValueError when they differ,
    unless ``allow_mixed`` (``ablation.provenance.check_one_library_code``)."""
    stamps = {condition.key: condition.metrics.get("provenance") for condition in study.conditions()}
    return check_one_library_code_of(stamps, allow_mixed=allow_mixed, what="evaluations")
