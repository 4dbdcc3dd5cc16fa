"""Figures: panels present for the conditions given, files written as PDF and PNG, clear errors."""

from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ablation.prefill.report import (
    FinetuneRun,
    Study,
    eval_loss_figure,
    load_study,
    plot_recovery_ratio,
    recovery_ratio_figure,
    write_figures,
)
from tests.prefill.study_files import synthetic_study, write_study_files

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return synthetic_study(tmp_path_factory.mktemp("figures") / "results")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return write_study_files(tmp_path_factory.mktemp("figure_inputs") / "results")


def test_recovery_ratio_figure_has_the_three_panels(study):
    figure = recovery_ratio_figure(study)
    assert len(figure.axes) == 3
    stages, side_effect, per_task = figure.axes
    assert stages.get_title(loc="left").startswith("A")
    assert per_task.get_title(loc="left").startswith("B")
    assert side_effect.get_title(loc="left").startswith("C")
    assert len(stages.patches) == 5  # Stage 1, Stage 2 prefill_bidir and full_bidir, two Stage 4
    assert len(per_task.patches) == 5 * 5
    assert len(side_effect.patches) == 3
    texts = [text.get_text() for text in stages.texts]
    assert "0.522\nR = 0.750" in texts and "0.388\nR = 0.557" in texts
    assert any("Δ −0.044" in text.get_text() for text in side_effect.texts)
    assert [label.get_text() for label in per_task.get_xticklabels()][0] == "hellaswag"


def test_recovery_ratio_figure_shows_both_ablated_masks_after_fine_tuning(tmp_path):
    study = synthetic_study(tmp_path / "results", full_bidir_after_ft=True)
    stages, _, per_task = recovery_ratio_figure(study).axes
    assert len(stages.patches) == 7  # the base model's three, then prefill_bidir and full_bidir per fine-tune
    assert len(per_task.patches) == 7 * 5
    texts = [text.get_text() for text in stages.texts]
    # four Stage 4 bars are crowded: their labels stand upright on one line
    assert "0.522  R = 0.750" in texts  # prefill_bidir after stage3b_prefix_lm
    assert "0.410  R = 0.589" in texts  # full_bidir after stage3b_prefix_lm
    assert sum(patch.get_hatch() == "xx" for patch in stages.patches) == 3


def test_side_effect_labels_stay_clear_of_the_baseline_line_when_a_drop_is_small(study):
    figure = recovery_ratio_figure(study)
    side_effect = figure.axes[1]
    renderer = FigureCanvasAgg(figure).get_renderer()
    baseline_y = side_effect.transData.transform((0, study.stage1["macro_acc"]))[1]
    labels = [text for text in side_effect.texts if "Δ" in text.get_text()]
    assert len(labels) == 2  # both fine-tunes lose less than 0.05 under causal eval
    for label in labels:
        assert label.get_window_extent(renderer).y0 > baseline_y


def test_recovery_ratio_figure_without_side_effects_or_full_bidir(paths):
    keys = ("stage1", "stage2_prefill_bidir", "stage4_stage3b_prefix_lm")
    figure = recovery_ratio_figure(load_study({key: paths[key] for key in keys}))
    assert len(figure.axes) == 2
    assert len(figure.axes[0].patches) == 3


def test_recovery_ratio_figure_with_a_chosen_run(study):
    figure = recovery_ratio_figure(study, runs=["stage3a_causal"])
    assert len(figure.axes[0].patches) == 4
    with pytest.raises(ValueError, match="no such run"):
        recovery_ratio_figure(study, runs=["stage9"])


def test_recovery_ratio_figure_names_missing_conditions(paths):
    with pytest.raises(ValueError, match="missing: stage2_prefill_bidir"):
        recovery_ratio_figure(load_study({"stage1": paths["stage1"]}))
    with pytest.raises(ValueError, match="Stage 4"):
        recovery_ratio_figure(load_study({k: paths[k] for k in ("stage1", "stage2_prefill_bidir")}))


def test_plot_recovery_ratio_writes_pdf_and_png(study, tmp_path):
    written = plot_recovery_ratio(study, tmp_path / "figs" / "recovery_ratio.pdf")
    assert [p.name for p in written] == ["recovery_ratio.pdf", "recovery_ratio.png"]
    pdf, png = (p.read_bytes() for p in written)
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    assert png.startswith(PNG_SIGNATURE) and len(png) > 50_000
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["recovery_ratio.pdf", "recovery_ratio.png"]


def test_eval_loss_figure_marks_the_early_stop(study):
    figure = eval_loss_figure(study)
    assert len(figure.axes) == 1
    ax = figure.axes[0]
    assert len(ax.lines) == 3  # two curves and the stop marker of stage3b_prefix_lm
    assert ax.lines[2].get_xdata()[0] == 100
    assert any("eval-loss plateau" in text.get_text() for text in ax.texts)
    assert "stopped early" in [text.get_text() for text in ax.get_legend().get_texts()]


def test_eval_loss_figure_needs_a_loss_history(paths):
    with pytest.raises(ValueError, match="loss_history"):
        eval_loss_figure(load_study({"stage1": paths["stage1"]}))
    empty = FinetuneRun("run", "causal", summary={"stop_reason": "max_steps"})
    with pytest.raises(ValueError, match="loss_history"):
        eval_loss_figure(Study(runs=(empty,)))


def test_write_figures_writes_every_figure(study, tmp_path):
    written = write_figures(study, tmp_path)
    assert sorted(p.name for p in written) == ["eval_loss.pdf", "eval_loss.png", "recovery_ratio.pdf", "recovery_ratio.png"]
    assert all(p.stat().st_size > 5_000 for p in written)
    with pytest.raises(ValueError, match="unknown figure"):
        write_figures(study, tmp_path, names=("pie_chart",))
