"""Derived numbers: the original study's published figures, per-task values, criteria and undefined ratios."""

from __future__ import annotations

import math

import pytest

from ablation.prefill.report import Study, ablation_damage, derived_by_run, derived_numbers, macro_stderr, original_metrics
from tests.prefill.study_files import REAL_TASKS, TINY_TASKS, make_metrics

# The original's published macros and per-task accs (the seeds 000/001 status pages; docs/prefill.md).
S1_MACRO, S2_MACRO, S4_MACRO, SIDE_MACRO = 0.6950568562, 0.3558976000, 0.4086983278, 0.6199344482
S1_TASKS = (0.622, 0.788, 0.814, 0.585284, 0.666)
S2_TASKS = (0.242, 0.534, 0.238, 0.247492, 0.518)
S4_TASKS = (0.324, 0.616, 0.352, 0.2475, 0.504)


def published():
    real = dict(tasks=REAL_TASKS, task_set="real")
    return (
        make_metrics(S1_TASKS, macro=S1_MACRO, **real),
        make_metrics(S2_TASKS, macro=S2_MACRO, **real),
        make_metrics(S4_TASKS, macro=S4_MACRO, **real),
        make_metrics(S1_TASKS, macro=SIDE_MACRO, **real),
    )


def test_original_macro_figures():
    stage1, stage2, stage4, side = published()
    macro = derived_numbers(stage1, stage2, stage4, side)["macro"]
    assert macro["damage"] == pytest.approx(-0.3391592562, abs=1e-6)
    assert macro["retention"] == pytest.approx(0.512, abs=5e-4)
    assert macro["retention"] == pytest.approx(S2_MACRO / S1_MACRO, abs=1e-6)
    assert macro["gain"] == pytest.approx(0.0528007278, abs=1e-6)
    assert macro["recovery_ratio"] == pytest.approx(0.5880, abs=5e-5)
    assert macro["recovery_ratio"] == pytest.approx(S4_MACRO / S1_MACRO, abs=1e-6)
    assert macro["recovered_fraction"] == pytest.approx(0.0528007278 / 0.3391592562, abs=1e-6)
    assert macro["side_effect_delta"] == pytest.approx(-0.0751224080, abs=1e-6)
    assert (macro["retains_80pct"], macro["gains_5pts"], macro["success"]) == (False, True, False)


def test_original_metrics_module_reproduces_the_published_numbers():
    macro = derived_numbers(*(original_metrics(c) for c in ("stage1", "stage2", "stage4", "side_effect")))["macro"]
    assert macro["damage"] == pytest.approx(-0.3391592562, abs=1e-6)
    assert macro["gain"] == pytest.approx(0.0528007278, abs=1e-6)
    assert macro["side_effect_delta"] == pytest.approx(-0.0751224080, abs=1e-6)
    # the published side-effect row has no per-task numbers
    assert derived_numbers(*(original_metrics(c) for c in ("stage1", "stage2", "stage4", "side_effect")))["tasks"][
        "piqa"
    ]["side_effect_delta"] is None


def test_per_task_numbers_match_the_published_deltas():
    stage1, stage2, stage4, _ = published()
    tasks = derived_numbers(stage1, stage2, stage4)["tasks"]
    assert list(tasks) == list(REAL_TASKS)
    expected_damage = {"hellaswag": -0.380, "piqa": -0.254, "arc_easy": -0.576, "arc_challenge": -0.337792, "winogrande": -0.148}
    for task, damage in expected_damage.items():
        assert tasks[task]["damage"] == pytest.approx(damage, abs=1e-6)
    assert tasks["hellaswag"]["gain"] == pytest.approx(0.082, abs=1e-9)
    assert tasks["arc_easy"]["recovery_ratio"] == pytest.approx(0.352 / 0.814, abs=1e-9)
    assert tasks["winogrande"]["recovered_fraction"] == pytest.approx((0.504 - 0.518) / (0.666 - 0.518), abs=1e-9)
    assert tasks["hellaswag"]["side_effect_delta"] is None


def test_undefined_ratios_are_none_not_inf():
    zero = make_metrics((0.0, 0.0, 0.0, 0.0, 0.0))
    same = make_metrics((0.5, 0.5, 0.5, 0.5, 0.5))
    numbers = derived_numbers(zero, zero, same)
    assert numbers["macro"]["retention"] is None
    assert numbers["macro"]["recovery_ratio"] is None
    assert numbers["macro"]["recovered_fraction"] is None  # S1 == S2
    assert numbers["macro"]["gain"] == pytest.approx(0.5)
    flat = derived_numbers(same, same, same)["macro"]
    assert flat["recovered_fraction"] is None
    assert flat["retention"] == 1.0
    assert not any(isinstance(v, float) and math.isinf(v) for v in flat.values())


def test_missing_task_acc_propagates_as_none():
    stage1 = make_metrics((0.6, 0.7, 0.8, 0.5, 0.6))
    stage1["tasks"]["tiny_piqa"]["acc"] = None
    numbers = derived_numbers(stage1, make_metrics((0.3,) * 5), make_metrics((0.4,) * 5))["tasks"]["tiny_piqa"]
    assert numbers["damage"] is None and numbers["retention"] is None
    assert numbers["retains_80pct"] is None and numbers["success"] is None
    assert numbers["gains_5pts"] is True


def test_criteria_hold_on_their_boundaries_despite_float_rounding():
    # 0.8 * 0.51 = 0.40800000000000003 and 0.56 + 0.05 = 0.6100000000000001 in binary floats
    retains = derived_numbers(make_metrics((0.51,) * 5), make_metrics((0.2,) * 5), make_metrics((0.408,) * 5))["macro"]
    assert retains["retains_80pct"] is True
    gains = derived_numbers(make_metrics((0.9,) * 5), make_metrics((0.56,) * 5), make_metrics((0.61,) * 5))["macro"]
    assert gains["gains_5pts"] is True
    assert gains["success"] is False  # 0.61 < 0.8 * 0.9
    both = derived_numbers(make_metrics((0.7,) * 5), make_metrics((0.3,) * 5), make_metrics((0.6,) * 5))["macro"]
    assert both["success"] is True


def test_comparing_different_task_sets_raises():
    tiny = make_metrics((0.6,) * 5, tasks=TINY_TASKS)
    real = make_metrics((0.6,) * 5, tasks=REAL_TASKS)
    with pytest.raises(ValueError, match="task set"):
        derived_numbers(tiny, tiny, real)
    with pytest.raises(ValueError, match="task set"):
        ablation_damage(tiny, real)


def test_ablation_damage_needs_no_fine_tune():
    damage = ablation_damage(make_metrics((0.6,) * 5), make_metrics((0.3,) * 5))
    assert damage["macro"]["damage"] == pytest.approx(-0.3)
    assert damage["tasks"]["tiny_piqa"]["retention"] == pytest.approx(0.5)


def test_macro_stderr_combines_task_stderrs():
    metrics = make_metrics((0.5,) * 5, n=100)
    assert macro_stderr(metrics) == pytest.approx(math.sqrt(5 * 0.05**2) / 5)
    metrics["tasks"]["tiny_piqa"]["acc_stderr"] = None
    assert macro_stderr(metrics) is None


def test_derived_by_run_names_what_is_missing():
    with pytest.raises(ValueError, match="stage2_prefill_bidir"):
        derived_by_run(Study(stage1=make_metrics((0.6,) * 5)))
    with pytest.raises(ValueError, match="Stage 4"):
        derived_by_run(Study(stage1=make_metrics((0.6,) * 5), stage2=make_metrics((0.3,) * 5)))
