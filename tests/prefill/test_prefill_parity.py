"""`python -m ablation.prefill parity`: the real preset matches the original's settings; a difference fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ablation.config import validate_config
from ablation.prefill.parity import PRESET, main, parity_rows

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_real_preset_passes(capsys):
    assert main(["parity"]) == 0
    out = capsys.readouterr().out
    assert "0 of 92 compared settings differ from the original" in out
    assert "finetune.runs.stage5_6000.auto_stop.mode" in out and "ignore_before_min_steps" in out
    assert "not compared: a score is the same at any batch size" in out
    assert any(line.split()[:3] == ["seed", "42", "42"] for line in out.splitlines())  # the original's run seed, the Trainer's shuffle


def test_a_setting_that_differs_is_named_and_fails(tmp_path, capsys):
    preset = yaml.safe_load(PRESET.read_text())
    preset["finetune"]["defaults"]["long_rows"] = "skip"
    preset["finetune"]["runs"]["stage5_6000"]["auto_stop"]["mode"] = "count_before_min_steps"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(preset))
    assert main(["parity", "--config", str(changed)]) == 1
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("4 of 92 compared settings differ")
    assert "finetune.runs.stage3b_prefix_lm.long_rows" in summary and "finetune.runs.stage5_6000.auto_stop.mode" in summary


def test_a_missing_run_differs_and_an_extra_one_is_not_compared():
    preset = yaml.safe_load(PRESET.read_text())
    preset["finetune"]["runs"]["extra"] = preset["finetune"]["runs"].pop("stage5b_10000")
    rows = {row[0]: row for row in parity_rows(validate_config(preset))}
    assert rows["finetune.runs.stage5b_10000"][3] == "differs"
    assert rows["finetune.runs.extra"][3].startswith("not compared")


def test_the_command_line_exits_non_zero_on_the_tiny_default():
    result = subprocess.run(
        [sys.executable, "-m", "ablation.prefill", "parity", "--config", str(REPOSITORY / "config.yaml")],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=120,
    )
    assert result.returncode == 1
    assert "model.id" in result.stdout.splitlines()[-1]  # the embedded model is not the original's
