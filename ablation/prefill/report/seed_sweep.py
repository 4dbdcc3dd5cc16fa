"""A seed sweep's report: the study's claims measured once per seed, with every seed's point and mean ± sd.

One tiny-world seed is one draw of world, pre-training and fine-tuning; whether the prefill damage,
the recovery and the prefix-LM advantage hold is a question about their spread over draws. The
report rule passes each seed's evaluations under keys ``seed_<s>__<condition key>``
(``ablation.layout.sweep_study_paths``); this module turns them into

- ``seed_sweep.{csv,md,tex}``: one row per quantity, one column per seed, then mean, sd and the
  95 % t-interval of the mean;
- ``seed_sweep.{pdf,png}``: (A) macro accuracy per condition, every seed a point, mean ± sd;
  (B) the drop and each fine-tune's gain the same way;
- the "Across seeds" answer of RESULTS.md, each claim with its interval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from ablation.prefill.report.derived import ZERO, derived_by_run
from ablation.prefill.report.figures import BASE_COLOURS, run_colours
from ablation.prefill.report.study import STAGE1, STAGE2, Study, display_task, load_study
from ablation.writers import STYLE, TableStyle, save_figure, write_table

SWEEP_KEY_PATTERN = re.compile(r"seed_(\d+)__(.+)")
CONFIDENCE = 0.95
SWEEP_STYLE = TableStyle(labels=frozenset({"quantity"}), formats={})
SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def split_sweep_paths(paths: Mapping[str, str | Path]) -> tuple[dict[str, str | Path], dict[int, dict[str, str | Path]]]:
    """(the study's own keys, seed -> that seed's condition keys) from one report input mapping."""
    own, by_seed = {}, {}
    for key, path in paths.items():
        match = SWEEP_KEY_PATTERN.fullmatch(key)
        if match is None:
            own[key] = path
        else:
            by_seed.setdefault(int(match[1]), {})[match[2]] = path
    return own, by_seed


def _check_seed(seed: int, study: Study) -> None:
    """Every evaluation given as ``seed``'s must have been run with it: a miswired input fails here."""
    for condition in study.conditions():
        recorded = (condition.metrics.get("provenance") or {}).get("seed")
        if recorded is not None and recorded != seed:
            source = study.sources.get(condition.key, condition.key)
            raise ValueError(f"{source} was evaluated with seed {recorded}, but is given as seed {seed}'s")


def load_sweep(paths_by_seed: Mapping[int, Mapping[str, str | Path]], train_masks: Mapping[str, str]) -> dict[int, Study]:
    """seed -> that seed's study, each checked to hold Stage 1, Stage 2 and Stage 4 evaluations of its seed."""
    if len(paths_by_seed) < 2:
        raise ValueError(f"a seed sweep needs at least two seeds; got {', '.join(map(str, paths_by_seed)) or 'none'}")
    studies = {}
    for seed, paths in paths_by_seed.items():
        study = load_study(paths, train_masks=train_masks)
        study.require(f"seed {seed}'s study", STAGE1, STAGE2)
        study.stage4_runs(f"seed {seed}'s study")
        _check_seed(seed, study)
        studies[seed] = study
    return studies


def _best_by_train_mask(study: Study, derived: Mapping[str, dict], train_mask: str) -> float | None:
    values = [derived[run.name]["macro"]["s4"] for run in study.runs if run.train_mask == train_mask and run.name in derived]
    return max(values) if values else None


def seed_quantities(study: Study) -> dict[str, float | None]:
    """One seed's claims: macro S1, S2 and drop, each fine-tune's S4, recovered fraction and side effect,
    the prefix-LM minus causal fine-tune Stage 4 gap, and each task's drop."""
    derived = derived_by_run(study, "the seed sweep")
    s1, s2 = study.stage1["macro_acc"], study.stage2["macro_acc"]
    values = {"S1 macro (causal)": s1, "S2 macro (prefill_bidir)": s2, "drop S1 − S2 (macro)": s1 - s2}
    for name, numbers in derived.items():
        macro = numbers["macro"]
        values[f"S4 macro, {name}"] = macro["s4"]
        values[f"gain S4 − S2, {name}"] = macro["gain"]
        values[f"recovered fraction, {name}"] = macro["recovered_fraction"]
        if macro["side_effect_delta"] is not None:
            values[f"side-effect Δ (causal eval), {name}"] = macro["side_effect_delta"]
    prefix_lm = _best_by_train_mask(study, derived, "prefill_bidir")
    causal = _best_by_train_mask(study, derived, "causal")
    if prefix_lm is not None and causal is not None:
        values["S4 prefix-LM FT − causal FT"] = prefix_lm - causal
    for task, numbers in next(iter(derived.values()))["tasks"].items():
        if numbers["damage"] is not None:
            values[f"drop S1 − S2, {display_task(task)}"] = numbers["s1"] - numbers["s2"]
    return values


def values_by_quantity(studies: Mapping[int, Study]) -> dict[str, dict[int, float]]:
    """quantity -> seed -> value, in first-seen order; a quantity a seed cannot form (None) is left out there."""
    by_quantity: dict[str, dict[int, float]] = {}
    for seed, study in studies.items():
        for name, value in seed_quantities(study).items():
            seeds = by_quantity.setdefault(name, {})
            if value is not None:
                seeds[seed] = value
    return by_quantity


@dataclass(frozen=True)
class Spread:
    """A quantity over seeds: its mean, sample sd and the t-interval of the mean (None below two values)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def sd(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.n < 2:
            return None
        half = stats.t.ppf((1 + CONFIDENCE) / 2, self.n - 1) * self.sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def sweep_table(studies: Mapping[int, Study], values: Mapping[str, Mapping[int, float]]) -> pd.DataFrame:
    """Quantity × seed, then n, mean, sd and the interval's bounds; a quantity a seed lacks is blank there.

    ``values``: ``values_by_quantity(studies)``.
    """
    rows = []
    for name, by_seed in values.items():
        spread = Spread(tuple(by_seed.values()))
        low, high = spread.interval or (None, None)
        rows.append(
            {
                "quantity": name,
                **{f"seed {seed}": by_seed.get(seed) for seed in studies},
                "n": spread.n,
                "mean": spread.mean,
                "sd": spread.sd,
                f"{CONFIDENCE:.0%} CI low": low,
                f"{CONFIDENCE:.0%} CI high": high,
            }
        )
    return pd.DataFrame(rows)


def _claim(values: Mapping[str, Mapping[int, float]], quantity: str, spec: str) -> str | None:
    """``quantity``: mean ± sd, its interval and every seed's value, in one phrase."""
    if quantity not in values:
        return None
    present = values[quantity]
    spread = Spread(tuple(present.values()))
    if spread.n == 0:
        return "undefined on every seed"
    if spread.n == 1:
        seed, value = next(iter(present.items()))
        return f"{format(value, spec)} (seed {seed} only; undefined on the others)"
    text = f"{format(spread.mean, spec)} ± {format(spread.sd, spec.lstrip('+'))} (mean ± sd over {spread.n} seeds"
    if spread.interval is not None:
        low, high = spread.interval
        text += f"; {CONFIDENCE:.0%} CI [{format(low, spec)}, {format(high, spec)}]"
    seeds = ", ".join(f"{seed}: {format(value, spec)}" for seed, value in present.items())
    return f"{text}; per seed {seeds})"


def sweep_answer(studies: Mapping[int, Study], values: Mapping[str, Mapping[int, float]]) -> str:
    """The study's claims across seeds, worded from the sweep's values: drop, recovery, prefix-LM vs causal.

    ``values``: ``values_by_quantity(studies)``, as the table shows them.
    """
    lines = [
        f"Seeds {', '.join(map(str, studies))}: each seed draws the world, pre-training and fine-tuning anew; "
        f"intervals are {CONFIDENCE:.0%} t-intervals of the mean over seeds. A seed whose drop is near zero "
        "has no meaningful recovered fraction of its own, so recovery is summarised as mean gain (S4 − S2) "
        "over mean drop.",
        "",
        f"- Drop under prefill_bidir (S1 − S2, macro): {_claim(values, 'drop S1 − S2 (macro)', '.4f')}.",
    ]
    drop = Spread(tuple(values["drop S1 − S2 (macro)"].values()))
    for run in _stage4_run_names(studies):
        gain = Spread(tuple(values[f"gain S4 − S2, {run}"].values()))
        recovered = _claim(values, f"recovered fraction, {run}", ".1%")
        side = _claim(values, f"side-effect Δ (causal eval), {run}", "+.4f")
        # a seed whose drop is near zero makes its own fraction explode; the ratio of the means does not
        pooled = "n/a" if abs(drop.mean) < ZERO else f"{gain.mean / drop.mean:.1%}"
        line = f"- `{run}`: mean gain over mean drop {pooled}; recovered fraction per seed {recovered}"
        lines.append(line + (f"; side effect {side}." if side else "."))
    gap = values.get("S4 prefix-LM FT − causal FT")
    if gap is not None:
        ahead = sum(value > 0 for value in gap.values())
        lines.append(
            f"- Prefix-LM vs causal fine-tune (best Stage 4 by train mask, prefix-LM minus causal): "
            f"{_claim(values, 'S4 prefix-LM FT − causal FT', '+.4f')}; prefix-LM ahead on {ahead} of {len(gap)} seeds."
        )
    return "\n".join(lines)


def _stage4_run_names(studies: Mapping[int, Study]) -> list[str]:
    """The fine-tunes with a Stage 4 evaluation, in the first seed's study order."""
    return [run.name for run in next(iter(studies.values())).stage4_runs("the seed sweep")]


def _strip(ax, position: float, values: Mapping[int, float], colour: str, markers: Mapping[int, str]) -> None:
    """Every seed's point beside one mean ± sd bar."""
    spread = Spread(tuple(values.values()))
    ax.bar(position, spread.mean, 0.55, color=colour, alpha=0.35, edgecolor=colour)
    # the error bar on the bar's left third, the seeds' points spread over the rest
    ax.errorbar(position - 0.17, spread.mean, yerr=spread.sd, color="black", capsize=4, linewidth=1.2)
    offsets = np.linspace(-0.05, 0.2, len(values)) if len(values) > 1 else [0.05]
    for offset, (seed, value) in zip(offsets, values.items()):
        ax.plot(position + offset, value, markers[seed], color=colour, markeredgecolor="black", markersize=6)


def sweep_figure(studies: Mapping[int, Study], values: Mapping[str, Mapping[int, float]]) -> Figure:
    """(A) macro accuracy per condition and (B) the drop beside each fine-tune's gain, seeds as points, mean ± sd.

    Panel B shows gains, not recovered fractions: a seed with almost no drop makes its own fraction
    explode, while its gain and drop stay on the scale of the others (the answer's mean gain over
    mean drop is the ratio of B's bars). ``values``: ``values_by_quantity(studies)``.
    """
    markers = dict(zip(studies, cycle(SEED_MARKERS)))
    runs = _stage4_run_names(studies)
    colours = run_colours(next(iter(studies.values())))
    conditions = [
        ("Stage 1\ncausal", "S1 macro (causal)", BASE_COLOURS[STAGE1]),
        ("Stage 2\nprefill_bidir", "S2 macro (prefill_bidir)", BASE_COLOURS[STAGE2]),
        *((f"Stage 4\n{run}", f"S4 macro, {run}", colours[run]) for run in runs),
    ]
    differences = [
        ("drop\nS1 − S2", "drop S1 − S2 (macro)", BASE_COLOURS[STAGE2]),
        *((f"gain S4 − S2\n{run}", f"gain S4 − S2, {run}", colours[run]) for run in runs),
    ]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(11, 4.8), layout="constrained")
        accuracy, gains = figure.subplots(1, 2, width_ratios=(len(conditions), len(differences)))
        for position, (_, quantity, colour) in enumerate(conditions):
            _strip(accuracy, position, values[quantity], colour, markers)
        accuracy.set_xticks(range(len(conditions)), [label for label, _, _ in conditions])
        accuracy.set_ylim(0, 1.05)
        accuracy.set_ylabel("macro accuracy")
        accuracy.set_title(f"A  Macro accuracy over {len(studies)} seeds (bar: mean ± sd)", loc="left")
        for position, (_, quantity, colour) in enumerate(differences):
            _strip(gains, position, values[quantity], colour, markers)
        gains.axhline(0, color="black", linewidth=0.8)
        gains.set_xticks(range(len(differences)), [label for label, _, _ in differences])
        gains.set_ylabel("macro accuracy difference")
        gains.set_title("B  Drop, and what each fine-tune wins back", loc="left")
        for ax in (accuracy, gains):
            ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
            ax.set_axisbelow(True)
        handles = [
            Line2D([], [], linestyle="none", marker=markers[seed], color="grey", markeredgecolor="black", label=f"seed {seed}")
            for seed in studies
        ]
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return figure


def write_sweep_report(studies: Mapping[int, Study], results_dir: str | Path, stem: str) -> tuple[list[Path], list[Path], str]:
    """Write the sweep's table (under ``tables/``) and figure; returns (tables, figures, the page's answer)."""
    results_dir = Path(results_dir)
    values = values_by_quantity(studies)
    tables = write_table(sweep_table(studies, values), results_dir / "tables" / stem, SWEEP_STYLE)
    figures = save_figure(sweep_figure(studies, values), results_dir / stem)
    return tables, figures, sweep_answer(studies, values)
