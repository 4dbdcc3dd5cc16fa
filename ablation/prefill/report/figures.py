"""The study's figures: recovery of zero-shot accuracy by stage, and eval loss of the fine-tunes.

- ``recovery_ratio``: (A) macro accuracy at Stage 1, Stage 2 and Stage 4 with the chance line,
  the Stage 1 baseline and the 80 %-of-baseline success target, recovery ratio annotated per
  fine-tune and ablated mask (prefill_bidir, and full_bidir hatched where evaluated); (B) the same evaluations per task; (C) the side effect, each fine-tune evaluated
  causal against the baseline (only when such evaluations exist).
- ``eval_loss``: eval loss against step per fine-tune run, the point where a run stopped early
  (stop_reason other than max_steps) marked.

Each figure is saved as PDF and PNG with one stem. Colours are the Okabe-Ito colour-blind-safe
palette, fixed per evaluation across figures: the base model's evaluations have their own, each
fine-tune run keeps one colour wherever it appears. Figures are built on ``matplotlib.figure.Figure``
(no pyplot state, no GUI backend) and written through a temporary file renamed into place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import cycle
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ablation.prefill.report.derived import RETENTION_TARGET, derived_by_run, recovery_numbers
from ablation.prefill.report.study import (
    FULL_BIDIR,
    FULL_BIDIR_AFTER_FT_PREFIX,
    STAGE1,
    STAGE2,
    STAGE4_PREFIX,
    FinetuneRun,
    Study,
    display_task,
    stop_reason_label,
    stopped_early,
    task_acc,
)
from ablation.writers import LABEL_BOX, STOP_MARKER, STYLE, save_figure


BASE_COLOURS = {STAGE1: "#0072B2", STAGE2: "#D55E00", FULL_BIDIR: "#BBBBBB"}
RUN_COLOURS = ("#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FULL_BIDIR_HATCH = "xx"
SIDE_EFFECT_HATCH = "//"
CHANCE_STYLE = dict(color="black", linestyle=":", linewidth=1.3)
TARGET_STYLE = dict(color="#555555", linestyle="-.", linewidth=1.1)


def run_colours(study: Study) -> dict[str, str]:
    """One colour per fine-tune run, by its position in the study, so subsets keep their colours."""
    return {run.name: colour for run, colour in zip(study.runs, cycle(RUN_COLOURS))}



def _bar_style(colour: str, hatch: str | None = None) -> dict:
    return dict(facecolor=colour, edgecolor="black", linewidth=0.6, hatch=hatch)


class Bar(NamedTuple):
    """One evaluation as drawn in panels A and B."""

    key: str
    label: str
    metrics: Mapping
    style: dict
    run: str | None = None
    recovery_ratio: float | None = None  # a Stage 4 bar's S4 / S1


def _bars(study: Study, runs: Iterable[FinetuneRun]) -> list[Bar]:
    """The evaluations panels A and B compare: the base model's, then Stage 4 of each shown run."""
    colours = run_colours(study)
    labels = {c.key: c.short for c in study.conditions()}
    base = [(STAGE1, study.stage1), (STAGE2, study.stage2), (FULL_BIDIR, study.full_bidir)]
    bars = [
        Bar(key, labels[key], metrics, _bar_style(BASE_COLOURS[key], FULL_BIDIR_HATCH if key == FULL_BIDIR else None))
        for key, metrics in base
        if metrics is not None
    ]
    baseline = study.stage1["macro_acc"]
    for run in runs:
        for prefix, metrics, hatch in (
            (STAGE4_PREFIX, run.ablated, None),
            (FULL_BIDIR_AFTER_FT_PREFIX, run.full_bidir, FULL_BIDIR_HATCH),
        ):
            if metrics is not None:
                ratio = recovery_numbers(baseline, None, metrics["macro_acc"])["recovery_ratio"]
                key = prefix + run.name
                bars.append(Bar(key, labels[key], metrics, _bar_style(colours[run.name], hatch), run.name, ratio))
    return bars


def _annotate(ax, x: float, height: float, text: str, crowded: bool) -> None:
    # Narrow bars cannot hold horizontal two-line labels; turn them upright instead.
    ax.annotate(
        text.replace("\n", "  ") if crowded else text,
        (x, height),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=9,
        rotation=90 if crowded else 0,
        bbox=LABEL_BOX,
    )


def _reference_lines(ax, baseline: float, chance: float | None) -> None:
    ax.axhline(baseline, color=BASE_COLOURS[STAGE1], linestyle="--", linewidth=1.2)
    ax.axhline(RETENTION_TARGET * baseline, **TARGET_STYLE)
    if chance is not None:
        ax.axhline(chance, **CHANCE_STYLE)


def _accuracy_axis(ax) -> None:
    ax.set_ylim(0, 1.12)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)


def _panel_stages(ax, study: Study, bars: list[Bar]) -> None:
    """Panel A: macro accuracy grouped by stage, recovery ratio over each Stage 4 bar."""
    groups = [
        ("Stage 1\n(causal)", [bar for bar in bars if bar.key == STAGE1]),
        ("Stage 2\n(ablated, no FT)", [bar for bar in bars if bar.key in (STAGE2, FULL_BIDIR)]),
        ("Stage 4\n(ablated, after FT)", [bar for bar in bars if bar.run is not None]),
    ]
    width = min(0.8 / max(len(members) for _, members in groups), 0.4)
    for position, (_, members) in enumerate(groups):
        crowded = len(members) > 3
        offsets = (np.arange(len(members)) - (len(members) - 1) / 2) * width
        for offset, bar in zip(offsets, members):
            value = bar.metrics["macro_acc"]
            ax.bar(position + offset, value, width, **bar.style)
            text = f"{value:.3f}"
            if bar.recovery_ratio is not None:
                text += f"\nR = {bar.recovery_ratio:.3f}"
            _annotate(ax, position + offset, value, text, crowded)
    _reference_lines(ax, study.stage1["macro_acc"], study.stage1.get("chance_macro"))
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    _accuracy_axis(ax)
    ax.set_title("A  Macro accuracy by stage (R = recovery ratio S4/S1)", loc="left")


def _panel_tasks(ax, study: Study, bars: list[Bar]) -> None:
    """Panel B: per-task accuracy of the same evaluations, chance marked per task."""
    tasks = study.tasks
    width = 0.84 / len(bars)
    offsets = (np.arange(len(bars)) - (len(bars) - 1) / 2) * width
    for offset, bar in zip(offsets, bars):
        values = [task_acc(bar.metrics, task) for task in tasks]
        ax.bar(np.arange(len(tasks)) + offset, [np.nan if v is None else v for v in values], width, **bar.style)
    for position, task in enumerate(tasks):
        chance = (study.stage1["tasks"].get(task) or {}).get("chance")
        if chance is not None:
            ax.hlines(chance, position - 0.46, position + 0.46, **CHANCE_STYLE)
    ax.set_xticks(range(len(tasks)), [display_task(task) for task in tasks])
    _accuracy_axis(ax)
    ax.set_title("B  Per-task accuracy (dotted: chance)", loc="left")


def _panel_side_effect(ax, study: Study, runs: list[FinetuneRun], derived: Mapping[str, dict]) -> None:
    """Panel C: each shown fine-tune evaluated causal against the Stage 1 baseline, delta annotated."""
    colours = run_colours(study)
    baseline = study.stage1["macro_acc"]
    crowded = len(runs) > 3
    ax.bar(0, baseline, 0.6, **_bar_style(BASE_COLOURS[STAGE1]))
    _annotate(ax, 0, baseline, f"{baseline:.3f}", crowded)
    for position, run in enumerate(runs, start=1):
        value = run.causal["macro_acc"]
        ax.bar(position, value, 0.6, **_bar_style(colours[run.name], SIDE_EFFECT_HATCH))
        delta = derived[run.name]["macro"]["side_effect_delta"]
        # a bar just under the baseline would put its label across the baseline line: start it above
        _annotate(ax, position, max(value, baseline), f"{value:.3f}\nΔ {delta:+.3f}".replace("-", "−"), crowded)
    _reference_lines(ax, baseline, study.stage1.get("chance_macro"))
    ax.set_xticks(range(len(runs) + 1), ["base", *(run.name for run in runs)], rotation=25, ha="right")
    _accuracy_axis(ax)
    ax.set_title("C  Side effect: FT evaluated causal", loc="left")


def _legend(figure: Figure, bars: list[Bar], side_effect: bool) -> None:
    handles = [Patch(label=bar.label, **bar.style) for bar in bars]
    if side_effect:
        handles.append(
            Patch(facecolor="white", edgecolor="black", hatch=SIDE_EFFECT_HATCH, label="FT evaluated causal (C)")
        )
    handles += [
        Line2D([], [], color=BASE_COLOURS[STAGE1], linestyle="--", label="Stage 1 baseline"),
        Line2D([], [], label=f"{RETENTION_TARGET:.0%} of baseline (success target)", **TARGET_STYLE),
        Line2D([], [], label="chance", **CHANCE_STYLE),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)


def recovery_ratio_figure(study: Study, runs: Iterable[str] | None = None) -> Figure:
    """Panels A (macro by stage), B (per task) and, when fine-tunes were evaluated causal, C (side effect).

    ``runs`` picks the fine-tunes shown (default: every run with a Stage 4 evaluation).
    """
    what = "the recovery_ratio figure"
    study.require(what, STAGE1, STAGE2)
    derived = derived_by_run(study, what)
    shown = _pick_runs(study.stage4_runs(what), runs, what)
    side_runs = [run for run in shown if run.causal is not None]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(11, 9), layout="constrained")
        grid = figure.add_gridspec(2, 3, height_ratios=(1, 1))
        bars = _bars(study, shown)
        _panel_stages(figure.add_subplot(grid[0, :2] if side_runs else grid[0, :]), study, bars)
        if side_runs:
            _panel_side_effect(figure.add_subplot(grid[0, 2]), study, side_runs, derived)
        _panel_tasks(figure.add_subplot(grid[1, :]), study, bars)
        _legend(figure, bars, bool(side_runs))
    return figure


def _pick_runs(available: Iterable[FinetuneRun], names: Iterable[str] | None, what: str) -> list[FinetuneRun]:
    available = list(available)
    if names is None:
        return available
    by_name = {run.name: run for run in available}
    names = list(names)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(
            f"{what}: no such run(s) with the needed data: {', '.join(missing)}; have: {', '.join(by_name)}"
        )
    return [by_name[name] for name in names]


def eval_loss_figure(study: Study, runs: Iterable[str] | None = None) -> Figure:
    """Eval loss against step for each fine-tune run; an early stop marked at the run's last step."""
    what = "the eval_loss figure"
    with_history = [
        run for run in study.runs if run.loss_history is not None and run.loss_history["eval_loss"].notna().any()
    ]
    if not with_history:
        raise ValueError(
            f"{what} needs at least one fine-tune run with eval losses in its loss_history.csv; there is none"
        )
    shown = _pick_runs(with_history, runs, what)
    colours = run_colours(study)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(7.5, 4.8), layout="constrained")
        ax = figure.add_subplot()
        any_stopped_early = False
        for run in shown:
            evals = run.loss_history.dropna(subset=["eval_loss"])
            colour = colours[run.name]
            ax.plot(evals["step"], evals["eval_loss"], marker="o", markersize=3.5, color=colour, label=run.label)
            if run.summary and stopped_early(run.summary):
                any_stopped_early = True
                step = run.summary.get("steps_run") or run.loss_history["step"].max()
                loss = evals["eval_loss"].iloc[-1]
                ax.plot(step, loss, linestyle="none", color=colour, **STOP_MARKER)
                ax.annotate(
                    f"{stop_reason_label(run.summary.get('stop_reason'))}\nat step {step:g}",
                    (step, loss),
                    # below-left of the stop: falling loss curves leave that corner empty
                    xytext=(-8, -8),
                    textcoords="offset points",
                    ha="right",
                    va="top",
                    fontsize=9,
                    bbox=LABEL_BOX,
                )
        handles, _ = ax.get_legend_handles_labels()
        if any_stopped_early:
            handles.append(Line2D([], [], linestyle="none", color="grey", label="stopped early", **STOP_MARKER))
        ax.legend(handles=handles, frameon=False)
        ax.set_xlabel("step")
        ax.set_ylabel("eval loss")
        ax.grid(color="#DDDDDD", linewidth=0.6)
        ax.set_axisbelow(True)
    return figure


FIGURES = {"recovery_ratio": recovery_ratio_figure, "eval_loss": eval_loss_figure}
FIGURE_NAMES = tuple(FIGURES)


def plot_recovery_ratio(study: Study, out_path: str | Path, runs: Iterable[str] | None = None) -> list[Path]:
    """Build and save the recovery_ratio figure; returns the PDF and PNG paths."""
    return save_figure(recovery_ratio_figure(study, runs), out_path)


def plot_eval_loss(study: Study, out_path: str | Path, runs: Iterable[str] | None = None) -> list[Path]:
    """Build and save the eval-loss figure; returns the PDF and PNG paths."""
    return save_figure(eval_loss_figure(study, runs), out_path)


def write_figures(study: Study, out_dir: str | Path, names: Iterable[str] = FIGURE_NAMES) -> list[Path]:
    """Build the named figures (all by default) and save each as ``<out_dir>/<name>.{pdf,png}``.

    All figures are built before any is written, so a missing input leaves ``out_dir`` untouched.
    """
    names = tuple(names)
    unknown = [name for name in names if name not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURE_NAMES)}")
    figures = {name: FIGURES[name](study) for name in names}
    return [path for name, figure in figures.items() for path in save_figure(figure, Path(out_dir) / name)]
