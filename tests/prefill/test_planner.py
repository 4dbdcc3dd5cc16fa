"""The cost planner's arithmetic, on the original study's observed figures and hand-made histories."""

from __future__ import annotations

import json

import pytest

from ablation.prefill.planner import Offer, main, parallel_efficiency, plan, plan_markdown, seconds_per_step_from_history, write_plan

A100 = Offer("A100 current", "A100_SXM4", 1, 0.7411)


def test_the_originals_a100_run_six_thousand_steps():
    (row,) = plan(seconds_per_step=2.82, measured_on="A100_SXM4", measured_gpus=1, steps=6000, offers=[A100])
    # 6000 x 2.82 s = 4.70 h of steps, plus 10 min start-up; cases scale the step time by 0.9 / 1.0 / 1.5
    assert row.seconds_per_step == pytest.approx(2.82)
    assert row.wall_hours == pytest.approx({"optimistic": 1 / 6 + 4.23, "base": 1 / 6 + 4.70, "pessimistic": 1 / 6 + 7.05})
    assert row.cost == pytest.approx({case: hours * 0.7411 for case, hours in row.wall_hours.items()})
    assert row.cost["base"] == pytest.approx(3.6067, abs=1e-4)


def test_other_gpus_are_scaled_by_speed_and_parallel_efficiency():
    offers = [Offer("H100 SXM", "H100_SXM", 1, 2.5), Offer("4x A100", "A100_SXM4", 4, 3.0)]
    h100, four_a100 = plan(seconds_per_step=2.82, measured_on="A100_SXM4", measured_gpus=1, steps=6000, offers=offers,
                           startup_minutes=0, case_factors={"base": 1.0})
    assert h100.seconds_per_step == pytest.approx(2.82 * 2.0 / 4.0)
    assert four_a100.seconds_per_step == pytest.approx(2.82 / (4 * 0.85))
    assert four_a100.cost["base"] == pytest.approx(6000 * 2.82 / (4 * 0.85) / 3600 * 3.0)


@pytest.mark.parametrize(("gpus", "efficiency"), [(1, 1.0), (2, 0.9), (3, 0.85), (4, 0.85), (8, 0.78), (16, 0.72)])
def test_parallel_efficiency_steps(gpus, efficiency):
    assert parallel_efficiency(gpus) == efficiency


def test_step_time_is_read_from_a_loss_history(tmp_path):
    history = tmp_path / "loss_history.csv"
    history.write_text(
        "step,epoch,elapsed_seconds,train_loss,eval_loss,learning_rate\n"
        "1,0.0,30.0,2.0,,0.0\n"  # the first step carries start-up work and is skipped
        "10,0.1,40.0,1.9,,1e-5\n"
        "20,0.2,68.2,1.8,1.9,2e-5\n"
        "30,0.3,96.4,1.7,,2e-5\n"
    )
    assert seconds_per_step_from_history(history) == pytest.approx(2.82)


@pytest.mark.parametrize(
    ("gpu_name", "observed"),
    [
        ("NVIDIA A100-SXM4-80GB", "on A100_SXM4 (config `planner.measured_on`; the run's summary records 1x NVIDIA A100-SXM4-80GB);"),
        ("NVIDIA H100 80GB HBM3", "on A100_SXM4 (config `planner.measured_on`), **but the run's summary records 1x NVIDIA H100 80GB HBM3: "
                                  "the times below assume A100_SXM4 gave it**;"),
        (None, "on A100_SXM4 (config `planner.measured_on`), **but the run's summary records CPU (AMD EPYC 7763)"),
    ],
)
def test_the_plan_names_the_hardware_the_runs_summary_records(tmp_path, gpu_name, observed):
    run = tmp_path / "finetune" / "stage5"
    run.mkdir(parents=True)
    (run / "loss_history.csv").write_text("step,epoch,elapsed_seconds,train_loss,eval_loss,learning_rate\n2,0,10.0,2,,0\n12,0,38.2,2,,0\n")
    hardware = {"gpu_name": gpu_name, "gpu_count": 1 if gpu_name else None, "cpu_model": "AMD EPYC 7763"}
    (run / "summary.json").write_text(json.dumps({"provenance": {"hardware": hardware}}))
    settings = {"measured_on": {"gpu": "A100_SXM4", "gpus": 1}, "steps": 6000, "offers": [vars(A100)], "case_factors": {"base": 1.0}, "startup_minutes": 10}
    text = write_plan(run / "loss_history.csv", settings, tmp_path / "plan.md").read_text()
    assert f"Observed 2.820 s/step {observed}" in text


def test_a_history_without_enough_steps_is_refused(tmp_path):
    history = tmp_path / "loss_history.csv"
    history.write_text("step,epoch,elapsed_seconds,train_loss,eval_loss,learning_rate\n1,0.0,30.0,2.0,,0.0\n")
    with pytest.raises(ValueError, match="too few timed steps"):
        seconds_per_step_from_history(history)


def test_unknown_gpus_and_bad_offers_are_named():
    with pytest.raises(ValueError, match="TPU_V5.*known: RTX_3090"):
        plan(seconds_per_step=1, measured_on="TPU_V5", measured_gpus=1, steps=10, offers=[A100])
    with pytest.raises(ValueError, match="NAME=GPUxCOUNT@PRICE"):
        Offer.parse("A100 for cheap")


def test_the_cli_prints_the_plan_table(capsys):
    main(["--seconds-per-step", "2.82", "--measured-on", "A100_SXM4", "--steps", "6000", "--offer", "A100 current=A100_SXM4x1@0.7411"])
    output = capsys.readouterr().out
    assert "| A100 current | 1x A100_SXM4 | 0.7411 | 2.820 | 4.40 / 4.87 / 7.22 | 3.26 / 3.61 / 5.35 |" in output


def test_markdown_lists_every_offer():
    rows = plan(seconds_per_step=2.82, measured_on="A100_SXM4", measured_gpus=1, steps=6000,
                offers=[A100, Offer("H100", "H100_SXM", 1, 2.0)])
    text = plan_markdown(rows, 6000, 2.82, "A100_SXM4")
    assert text.count("\n| ") == 3 and "6000 steps" in text
