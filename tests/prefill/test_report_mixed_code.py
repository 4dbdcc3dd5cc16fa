"""The report refuses evaluations made by different library code, unless told to tabulate them together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablation.prefill.report import build_report
from ablation.prefill.report.study import check_one_library_code
from tests.prefill.study_files import RUNS, synthetic_study, write_study_files


def stamp_code(path: Path, code: str) -> None:
    metrics = json.loads(path.read_text())
    metrics["provenance"]["library_code_sha256"] = code
    path.write_text(json.dumps(metrics))


def test_the_report_refuses_evaluations_made_by_different_code_and_names_them(tmp_path):
    paths = write_study_files(tmp_path)
    for key, path in paths.items():
        if not key.startswith("finetune_"):
            stamp_code(path, "1" * 64)
    stamp_code(paths["stage4_stage3b_prefix_lm"], "2" * 64)
    with pytest.raises(ValueError, match=r"222222222222: stage4_stage3b_prefix_lm.*report.allow_mixed_code"):
        build_report(paths, tmp_path / "report", train_masks=RUNS, experiment="mixed")
    assert not (tmp_path / "report").exists()
    written = build_report(paths, tmp_path / "report", train_masks=RUNS, experiment="mixed", allow_mixed_code=True)
    assert (tmp_path / "report" / "RESULTS.md") in written


def test_one_code_throughout_is_accepted(tmp_path):
    groups = check_one_library_code(synthetic_study(tmp_path))
    assert list(groups) == ["unrecorded"] and len(groups["unrecorded"]) == 7
