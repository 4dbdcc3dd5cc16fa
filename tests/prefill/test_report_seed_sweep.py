"""The seed sweep's report: per-seed quantities, mean ± sd and t-intervals, the figure and the page's answer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ablation.layout import report_files, study_paths, sweep_study_paths
from ablation.prefill.report import build_report
from ablation.prefill.report.seed_sweep import (
    SEED_MARKERS,
    load_sweep,
    split_sweep_paths,
    sweep_answer,
    sweep_figure,
    sweep_table,
    values_by_quantity,
)
from tests.prefill.study_files import ACCS, RUNS, make_metrics, write_study_files

# Each seed shifts the ablated evaluations by its own amount, so drops and recoveries differ by seed.
SHIFTS = {11: 0.00, 12: -0.03, 13: 0.02}


def write_seed_files(results: Path, seed: int, shift: float) -> None:
    for key, path in study_paths(results, RUNS, full_bidir=False, finetune=False).items():
        accs = ACCS[key] if key == "stage1" or key.startswith("side_effect") else [acc + shift for acc in ACCS[key]]
        metrics = make_metrics(accs, mask=path.parent.name, model=path.parent.parent.name)
        metrics["provenance"]["seed"] = seed
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics))


@pytest.fixture()
def sweep_dirs(tmp_path):
    dirs = {seed: tmp_path / "results" / "seeds" / str(seed) for seed in SHIFTS}
    for seed, shift in SHIFTS.items():
        write_seed_files(dirs[seed], seed, shift)
    return dirs


def expected_drops() -> list[float]:
    s1 = np.mean(ACCS["stage1"])
    return [s1 - np.mean([acc + shift for acc in ACCS["stage2_prefill_bidir"]]) for shift in SHIFTS.values()]


def test_table_gives_every_seed_and_mean_sd_and_t_interval(sweep_dirs):
    _, by_seed = split_sweep_paths(sweep_study_paths(sweep_dirs, RUNS))
    studies = load_sweep(by_seed, RUNS)
    table = sweep_table(studies, values_by_quantity(studies)).set_index("quantity")
    drops = expected_drops()
    row = table.loc["drop S1 − S2 (macro)"]
    assert [row[f"seed {seed}"] for seed in SHIFTS] == pytest.approx(drops)
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(np.mean(drops))
    assert row["sd"] == pytest.approx(np.std(drops, ddof=1))
    half = 4.302653 * np.std(drops, ddof=1) / math.sqrt(3)  # t(0.975, 2 df)
    assert (row["95% CI low"], row["95% CI high"]) == pytest.approx((np.mean(drops) - half, np.mean(drops) + half), abs=1e-5)
    # the prefix-LM run's S4 minus the causal run's, per seed: the shift cancels
    gap = np.mean(ACCS["stage4_stage3b_prefix_lm"]) - np.mean(ACCS["stage4_stage3a_causal"])
    assert table.loc["S4 prefix-LM FT − causal FT", "mean"] == pytest.approx(gap)
    assert table.loc["S4 prefix-LM FT − causal FT", "sd"] == pytest.approx(0, abs=1e-12)
    assert "recovered fraction, stage3b_prefix_lm" in table.index
    assert "drop S1 − S2, hellaswag" in table.index


def test_answer_states_each_claim_with_its_interval(sweep_dirs):
    _, by_seed = split_sweep_paths(sweep_study_paths(sweep_dirs, RUNS))
    studies = load_sweep(by_seed, RUNS)
    answer = sweep_answer(studies, values_by_quantity(studies))
    drops = expected_drops()
    assert f"{np.mean(drops):.4f} ± {np.std(drops, ddof=1):.4f} (mean ± sd over 3 seeds; 95% CI [" in answer
    assert "per seed 11: " in answer and "13: " in answer
    gain = np.mean(ACCS["stage4_stage3b_prefix_lm"]) - np.mean(ACCS["stage2_prefill_bidir"])  # shifts cancel
    assert f"`stage3b_prefix_lm`: mean gain over mean drop {gain / np.mean(drops):.1%}; recovered fraction" in answer
    assert "prefix-LM ahead on 3 of 3 seeds" in answer


def test_a_seed_without_a_drop_leaves_its_recovered_fraction_undefined(tmp_path):
    # Stage 2 equal to Stage 1 on every seed but one: the fraction exists on one seed only
    dirs = {seed: tmp_path / str(seed) for seed in SHIFTS}
    for seed, shift in SHIFTS.items():
        write_seed_files(dirs[seed], seed, shift)
    for seed in (12, 13):
        stage1 = dirs[seed] / "eval" / "base" / "causal" / "metrics.json"
        metrics = json.loads(stage1.read_text())
        metrics["provenance"]["mask"] = "prefill_bidir"
        (dirs[seed] / "eval" / "base" / "prefill_bidir" / "metrics.json").write_text(json.dumps(metrics))
    _, by_seed = split_sweep_paths(sweep_study_paths(dirs, RUNS))
    studies = load_sweep(by_seed, RUNS)
    answer = sweep_answer(studies, values_by_quantity(studies))
    assert "recovered fraction per seed" in answer and "(seed 11 only; undefined on the others)" in answer


def test_an_evaluation_of_another_seed_is_refused(sweep_dirs):
    paths = sweep_study_paths(sweep_dirs, RUNS)
    _, by_seed = split_sweep_paths(paths)
    by_seed[11]["stage2_prefill_bidir"] = by_seed[12]["stage2_prefill_bidir"]
    with pytest.raises(ValueError, match="evaluated with seed 12, but is given as seed 11's"):
        load_sweep(by_seed, RUNS)


def test_a_sweep_needs_two_seeds(sweep_dirs):
    _, by_seed = split_sweep_paths(sweep_study_paths({11: sweep_dirs[11]}, RUNS))
    with pytest.raises(ValueError, match="at least two seeds"):
        load_sweep(by_seed, RUNS)


def test_report_with_a_sweep_writes_its_table_figure_and_answer(tmp_path, sweep_dirs):
    results = tmp_path / "results"
    paths = {**write_study_files(results), **sweep_study_paths(sweep_dirs, RUNS)}
    written = build_report(paths, results, train_masks=RUNS, experiment="sweep")
    expected = report_files(results, with_runs=True, seed_sweep=True)
    assert sorted(written) == sorted(path for files in expected.values() for path in files)
    page = (results / "RESULTS.md").read_text()
    assert "### 3. Do the answers hold across seeds?" in page
    assert "![seed_sweep](seed_sweep.png)" in page
    assert (results / "tables" / "seed_sweep.md").read_text().startswith("| quantity")


def test_the_figure_plots_each_seeds_drop_and_gains(sweep_dirs):
    """Panel B holds the per-seed drop and gains (not recovered fractions, which explode without a drop)."""
    _, by_seed = split_sweep_paths(sweep_study_paths(sweep_dirs, RUNS))
    studies = load_sweep(by_seed, RUNS)
    values = values_by_quantity(studies)
    _, panel_b = sweep_figure(studies, values).axes
    plotted = sorted(y for line in panel_b.get_lines() if line.get_marker() in SEED_MARKERS for y in line.get_ydata())
    expected = [*values["drop S1 − S2 (macro)"].values()]
    expected += [value for run in RUNS for value in values[f"gain S4 − S2, {run}"].values()]
    assert plotted == pytest.approx(sorted(expected))
    assert [label.get_text().split("\n")[0] for label in panel_b.get_xticklabels()] == ["drop", "gain S4 − S2", "gain S4 − S2"]
