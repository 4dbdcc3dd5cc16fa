"""Choosing the fine-tune settings on the development split: the grid, the criterion and the report."""

import json

import pytest

from ablation.layout import TUNING_BASE_KEY, TUNING_TRIAL_KEY
from ablation.prefill.report.tuning import write_tuning_report
from ablation.config import finetune_settings
from ablation.prefill.tuning import TrialResult, choose_trial, trial_grid, trial_settings

RUNS = ("causal_ft", "prefix_ft")


def result(trial, steps, lr, prefill, causal, replay=0.8):
    settings = {"learning_rate": lr, "max_steps": steps, "replay_fraction": replay}
    return TrialResult(trial, settings, dict(zip(RUNS, prefill)), dict(zip(RUNS, causal)))


def test_the_grid_has_one_named_trial_per_combination():
    trials = trial_grid({"learning_rate": [5e-4, 1e-3], "max_steps": [150, 300], "replay_fraction": [0.8]})
    assert list(trials) == [
        "lr0.0005_steps150_replay0.8",
        "lr0.0005_steps300_replay0.8",
        "lr0.001_steps150_replay0.8",
        "lr0.001_steps300_replay0.8",
    ]
    assert trials["lr0.001_steps300_replay0.8"] == {"learning_rate": 1e-3, "max_steps": 300, "replay_fraction": 0.8}


def test_a_trial_overrides_the_runs_own_settings():
    config = {"finetune": {"defaults": {"learning_rate": 1.0, "max_steps": 9}, "runs": {"a": {"train_mask": "causal", "max_steps": 7}}}}
    settings = trial_settings(config, "a", {"learning_rate": 2e-3, "max_steps": 150, "replay_fraction": 0.5})
    assert (settings["learning_rate"], settings["max_steps"], settings["replay_fraction"]) == (2e-3, 150, 0.5)
    assert settings["train_mask"] == "causal"


def test_a_trial_uploads_nothing_even_when_its_run_publishes_to_the_hub():
    config = {"finetune": {"defaults": {}, "runs": {"a": {"train_mask": "causal", "hub_repo_id": "lab/ablation"}}}}
    assert finetune_settings(config, "a")["hub_repo_id"] == "lab/ablation"
    assert trial_settings(config, "a", {"max_steps": 150})["hub_repo_id"] is None


def test_the_best_prefill_score_among_points_that_keep_what_the_model_knew_wins():
    base_causal = 0.90
    results = [
        result("forgets", 300, 2e-3, prefill=(0.95, 0.97), causal=(0.85, 0.90)),  # best prefill, loses 0.05
        result("good", 300, 1e-3, prefill=(0.85, 0.90), causal=(0.89, 0.90)),
        result("gentle", 150, 5e-4, prefill=(0.80, 0.84), causal=(0.90, 0.91)),
    ]
    choice = choose_trial(results, base_causal, max_side_effect=0.02)
    assert choice.result.trial == "good" and choice.keeps_knowledge


def test_ties_go_to_the_cheaper_point():
    results = [
        result("long", 300, 1e-3, prefill=(0.8, 0.9), causal=(0.9, 0.9)),
        result("short_fast", 150, 2e-3, prefill=(0.9, 0.8), causal=(0.9, 0.9)),
        result("short_slow", 150, 1e-3, prefill=(0.85, 0.85), causal=(0.9, 0.9)),
    ]
    assert choose_trial(results, 0.9, 0.02).result.trial == "short_slow"


def test_when_every_point_forgets_the_gentlest_is_chosen_and_flagged():
    results = [
        result("a", 150, 1e-3, prefill=(0.9, 0.9), causal=(0.80, 0.86)),  # worst loss 0.10
        result("b", 300, 1e-3, prefill=(0.7, 0.7), causal=(0.85, 0.87)),  # worst loss 0.05
    ]
    choice = choose_trial(results, 0.9, 0.02)
    assert choice.result.trial == "b" and not choice.keeps_knowledge
    with pytest.raises(ValueError, match="no trials"):
        choose_trial([], 0.9, 0.02)


def write_metrics(path, macro, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tasks": {}, "macro_acc": macro, "provenance": {"mask": mask}}))
    return path


def test_the_report_writes_the_grid_and_the_choice(tmp_path):
    trials = trial_grid({"learning_rate": [1e-3, 2e-3], "max_steps": [150], "replay_fraction": [0.8]})
    values = {  # trial -> run -> (prefill_bidir, causal)
        "lr0.001_steps150_replay0.8": {"causal_ft": (0.70, 0.90), "prefix_ft": (0.80, 0.91)},
        "lr0.002_steps150_replay0.8": {"causal_ft": (0.75, 0.85), "prefix_ft": (0.90, 0.90)},
    }
    inputs = {TUNING_BASE_KEY.format(mask=m): write_metrics(tmp_path / "base" / m, v, m) for m, v in (("causal", 0.9), ("prefill_bidir", 0.6))}
    for trial, runs in values.items():
        for run, (prefill, causal) in runs.items():
            for mask, value in (("prefill_bidir", prefill), ("causal", causal)):
                inputs[TUNING_TRIAL_KEY.format(trial=trial, run=run, mask=mask)] = write_metrics(tmp_path / trial / run / mask, value, mask)
    choice = write_tuning_report(inputs, trials, RUNS, 0.02, tmp_path / "out", stamp=lambda: {"seed": 1})
    written = json.loads((tmp_path / "out" / "finetune_choice.json").read_text())
    # the faster point scores higher under prefill_bidir, but its causal fine-tune loses 0.05
    assert choice.result.trial == written["chosen"] == "lr0.001_steps150_replay0.8"
    assert written["settings"] == {"learning_rate": 1e-3, "max_steps": 150, "replay_fraction": 0.8}
    assert written["keeps_knowledge"] and written["provenance"] == {"seed": 1}
    assert written["dev_causal_delta"]["prefix_ft"] == pytest.approx(0.01)
    table = (tmp_path / "out" / "finetune_grid.md").read_text()
    assert "lr0.002_steps150_replay0.8" in table and "fail" in table and "✓" in table
    assert (tmp_path / "out" / "finetune_grid.csv").read_text().count("\n") == 3


def test_an_evaluation_under_the_wrong_mask_is_refused(tmp_path):
    trials = trial_grid({"learning_rate": [1e-3], "max_steps": [150], "replay_fraction": [0.8]})
    inputs = {TUNING_BASE_KEY.format(mask=m): write_metrics(tmp_path / "base" / m, 0.5, m) for m in ("causal", "prefill_bidir")}
    for run in RUNS:
        for mask in ("prefill_bidir", "causal"):
            inputs[TUNING_TRIAL_KEY.format(trial="lr0.001_steps150_replay0.8", run=run, mask=mask)] = write_metrics(
                tmp_path / run / mask, 0.5, "causal"
            )
    with pytest.raises(ValueError, match="given as a 'prefill_bidir' evaluation"):
        write_tuning_report(inputs, trials, RUNS, 0.02, tmp_path / "out", stamp=dict)
    assert not (tmp_path / "out").exists()
