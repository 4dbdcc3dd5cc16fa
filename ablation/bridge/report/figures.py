"""The bridge study's figures, saved as PDF and PNG by the prefill report's ``save_figure``.

- ``bridge_accuracy``: bridged accuracy against step, one panel per trained or imported run, the
  source-alone and target-alone accuracies as lines, the final evaluation (the weights the run kept: its best or its last)
  and an early stop marked.
- ``bridge_compression``: the K sweep of ``bridge.report.claims.compression_tradeoff``: peak and
  final bridged accuracy with 95% intervals per run, ordered by K, compression ratio on the axis.
- ``bridge_inference``: the inference benchmark: accuracy, latency and KV cache per baseline,
  with 95% intervals.

Every figure is drawn whatever is missing: an absent run or benchmark is written on it as
"not yet run", so the report never waits for a figure's inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ablation.bridge.report.study import NOT_YET_RUN, BridgeRun, BridgeStudy
from ablation.bridge.report.tables import BASELINES, soft_tokens_label
from ablation.bridge.run_format import FINAL_STEP
from ablation.writers import LABEL_BOX, STOP_MARKER, STYLE, save_figure

SIDE_STYLES = {  # Okabe-Ito, as the prefill figures
    "bridged": dict(color="#009E73", marker="o", markersize=4, linewidth=1.8),
    "source": dict(color="#0072B2", linestyle="--", linewidth=1.2),
    "target": dict(color="#D55E00", linestyle="-.", linewidth=1.2),
}
FINAL_MARKER = dict(marker="D", markersize=7, markeredgecolor="black", color="#009E73", linestyle="none")
PEAK_MARKER = dict(marker="o", markersize=7, markerfacecolor="white", markeredgewidth=1.6, color="#009E73", linestyle="none")
BASELINE_COLOURS = dict(zip(BASELINES, ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")))
PANEL_COLUMNS = 3


def _accuracy_axis(ax, label: str = "accuracy") -> None:
    ax.set_ylim(-0.03, 1.05)  # below zero: points at accuracy 0 stay whole
    ax.set_ylabel(label)
    ax.grid(color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _title(study: BridgeStudy, run: BridgeRun) -> str:
    """The roles showing this run's numbers, the run's own name where it differs, origin, dataset, K."""
    roles = [role for role in study.roles if (other := study.run_of(role)) is not None and other.trained_run == run.trained_run]
    name = "" if run.trained_run in roles else f" · {run.trained_run}"
    return f"{', '.join(roles)}{name} ({run.origin}, {run.dataset}, K = {soft_tokens_label(run)})".lstrip(" ·")


def _accuracy_panel(ax, study: BridgeStudy, run: BridgeRun) -> None:
    """Bridged accuracy per evaluation, the single models as lines, the final evaluation and a stop marked."""
    trained = [row for row in run.history if row["step"] != FINAL_STEP]
    steps = [row["step"] for row in trained]
    for side in ("source", "target", "bridged"):
        ax.plot(steps, [row[f"{side}_acc"] for row in trained], **SIDE_STYLES[side])
    last = steps[-1]
    final = run.summary["final_bridged_acc"]
    if run.final_step == FINAL_STEP:
        ax.plot(last, final, **FINAL_MARKER)
    if run.stopped_early:
        ax.plot(last, trained[-1]["bridged_acc"], color="#333333", linestyle="none", **STOP_MARKER)
    # right of the last evaluation, where no curve runs
    ax.annotate(f"final\n{final:.3f}", (last, final), xytext=(9, 0), textcoords="offset points", ha="left", va="center",
                fontsize=8.5, bbox=LABEL_BOX)  # fmt: skip
    ax.set_xlim(steps[0] - 0.03 * (last - steps[0] or 1), last + 0.25 * (last - steps[0] or 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(_title(study, run), fontsize=10, loc="left")
    ax.set_xlabel("training step")
    _accuracy_axis(ax)


def accuracy_figure(study: BridgeStudy) -> Figure:
    runs = study.shown_runs()
    columns = max(1, min(PANEL_COLUMNS, len(runs)))
    rows = max(1, math.ceil(len(runs) / columns))
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(max(9.0, 4.3 * columns + 0.6), 3.1 * rows + 1.1), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False)
        for ax, run in zip(axes.flat, runs):
            _accuracy_panel(ax, study, run)
        for ax in axes.flat[len(runs):]:
            ax.set_visible(False)
        if not runs:
            axes[0, 0].set_visible(True)
            _empty(axes[0, 0], "no bridge run has results yet")
        missing = [role for role in study.roles if study.run_of(role) is None]
        handles = [
            Line2D([], [], label="bridged (target reads the soft tokens)", **SIDE_STYLES["bridged"]),
            Line2D([], [], label="source alone", **SIDE_STYLES["source"]),
            Line2D([], [], label="target alone", **SIDE_STYLES["target"]),
            Line2D([], [], label="final evaluation (the weights the run kept: its best or its last)", **FINAL_MARKER),
            Line2D([], [], color="#333333", linestyle="none", label="stopped early", **STOP_MARKER),
        ]
        figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
        figure.suptitle("Bridged accuracy during training" + (f"\nnot yet run: {', '.join(missing)}" if missing else ""))
    return figure


def _error(interval: Mapping) -> list[list[float]]:
    low, high = interval["ci95"]
    return [[interval["mean"] - low], [high - interval["mean"]]]


def compression_figure(study: BridgeStudy) -> Figure:
    """Peak and final bridged accuracy against K for the sweep's runs; absent roles last, labelled on the axis."""
    roles = study.report["claims"]["compression_tradeoff"]["roles"]
    present = sorted((role for role in roles if study.run_of(role) is not None), key=lambda role: study.run_of(role).k_order)
    order = present + [role for role in roles if role not in present]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(7.2, 4.8), layout="constrained")
        ax = figure.add_subplot()
        finals = []
        for position, role in enumerate(order):
            run = study.run_of(role)
            if run is None:
                ax.text(position, 0.5, NOT_YET_RUN, ha="center", va="center", rotation=90, color="#777777")
                continue
            peak, final = run.accuracy_interval(run.summary["peak_step"]), run.accuracy_interval(run.final_step)
            ax.errorbar(position - 0.08, peak["mean"], yerr=_error(peak), capsize=3, elinewidth=1, **PEAK_MARKER)
            ax.errorbar(position + 0.08, final["mean"], yerr=_error(final), capsize=3, elinewidth=1, **FINAL_MARKER)
            ax.annotate(f"{final['mean']:.3f}", (position + 0.08, final["mean"]), xytext=(8, 0), textcoords="offset points",
                        va="center", fontsize=9, bbox=LABEL_BOX)  # fmt: skip
            finals.append((position + 0.08, final["mean"]))
            for side in ("source", "target"):
                ax.hlines(run.summary[f"{side}_acc"], position - 0.35, position + 0.35, **{k: v for k, v in SIDE_STYLES[side].items() if k != "marker"})
        if len(finals) > 1:
            ax.plot(*zip(*finals), color="#009E73", linewidth=1, alpha=0.6)
        ax.set_xticks(range(len(order)), [_sweep_label(study, role) for role in order])
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_xlabel("runs by K, fewest soft tokens (most compression) first; compression = prompt tokens / K")
        _accuracy_axis(ax, "bridged accuracy")
        handles = [
            Line2D([], [], label="peak (95% interval)", **PEAK_MARKER),
            Line2D([], [], label="final (95% interval)", **FINAL_MARKER),
            Line2D([], [], label="source alone", **SIDE_STYLES["source"]),
            Line2D([], [], label="target alone", **SIDE_STYLES["target"]),
        ]
        ax.legend(handles=handles, loc="upper left", frameon=False, ncols=2)
        ax.set_title("Compression-quality trade-off", loc="left")
    return figure


def _sweep_label(study: BridgeStudy, role: str) -> str:
    run = study.run_of(role)
    if run is None:
        return f"{role}\n{NOT_YET_RUN}"
    ratio = "" if run.compression is None else f"\n{run.compression:.1f}×"
    reused = "" if run.trained_run == run.name else f" (= {run.trained_run})"
    return f"{role}{reused}\nK = {soft_tokens_label(run)}{ratio}"


INFERENCE_PANELS = (  # summary key, title, value format
    ("accuracy", "accuracy", ".3f"), ("latency_s", "latency of a question's batch (s)", ".3g"), ("kv_cache_mb", "KV cache (MB)", ".3g"),
)


def inference_figure(study: BridgeStudy) -> Figure:
    """Accuracy, latency and KV cache per baseline of the benchmark (the first, when several ran)."""
    benchmark = next(iter(study.inference.items()), None)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(11, 4.2), layout="constrained")
        axes = figure.subplots(1, len(INFERENCE_PANELS))
        if benchmark is None:
            for ax, (_, label, _) in zip(axes, INFERENCE_PANELS):
                ax.set_title(label, loc="left")
                _empty(ax, f"inference benchmark\n{NOT_YET_RUN}")
            figure.suptitle("Inference benchmark")
            return figure
        run, summary = benchmark
        names = [name for name in BASELINES if name in summary["baselines"]]
        for ax, (key, label, spec) in zip(axes, INFERENCE_PANELS):
            for position, name in enumerate(names):
                value = summary["baselines"][name][key]
                ax.bar(position, value["mean"], 0.7, color=BASELINE_COLOURS[name], edgecolor="black", linewidth=0.6,
                       yerr=_error(value), capsize=3, error_kw=dict(elinewidth=1))  # fmt: skip
                ax.annotate(f"{value['mean']:{spec}}", (position, value["ci95"][1]), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8.5, bbox=LABEL_BOX)  # fmt: skip
            ax.set_xticks(range(len(names)), [name.replace("_", "\n") for name in names])
            ax.set_title(label, loc="left")
            ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.margins(y=0.15)
        axes[0].set_ylim(0, 1.1)
        figure.suptitle(f"Inference benchmark of run {run} ({summary.get('dataset', '?')}, {summary.get('samples', '?')} questions; bars: mean, whiskers: 95% interval)")
    return figure


FIGURES = {"bridge_accuracy": accuracy_figure, "bridge_compression": compression_figure, "bridge_inference": inference_figure}


def write_bridge_figures(study: BridgeStudy, out_dir: str | Path) -> list[Path]:
    """Build every figure, then save each as ``<out_dir>/<name>.{pdf,png}``."""
    figures = {name: build(study) for name, build in FIGURES.items()}
    return [path for name, figure in figures.items() for path in save_figure(figure, Path(out_dir) / name)]

