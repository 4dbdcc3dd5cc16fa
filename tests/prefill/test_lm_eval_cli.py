"""lm-eval's own command line runs ``masked_hf`` from a fresh install: the ``ablation-lm-eval`` command.

lm-eval has no model-plugin discovery, so ``pyproject.toml`` installs ``ablation-lm-eval``: lm-eval's
CLI with ``masked_hf`` registered. Run as a user would, in a subprocess that imports nothing of ours
by hand, its numbers must be the mask mode's, not stock causal scoring's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest

from ablation.prefill.lm_eval_model import MaskedHFLM
from ablation.prefill.task_sets import task_manager

TASKS = ("tiny_piqa", "tiny_arc_challenge")
LIMIT = 6


def loglikelihoods(samples: list[dict]) -> list[float]:
    ordered = sorted(samples, key=lambda sample: sample["doc_id"])
    return [float(response[0][0]) for sample in ordered for response in sample["resps"]]


def test_lm_eval_cli_scores_the_tiny_model_under_a_mask(micro_world, tmp_path):
    script = Path(sys.executable).parent / "ablation-lm-eval"
    assert script.is_file(), f"{script} is missing: this environment predates the entry point; run pip install -e ."
    model = micro_world / "base_model"
    command = [
        str(script), "run",
        "--model", "masked_hf", "--model_args", f"pretrained={model},mask=prefill_bidir,dtype=float32",
        "--tasks", *TASKS, "--include_path", str(micro_world / "tasks"), "--limit", str(LIMIT),
        "--batch_size", "8", "--device", "cpu", "--output_path", str(tmp_path), "--log_samples",
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    (results_file,) = tmp_path.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["config"]["model"] == "masked_hf"

    manager = task_manager(micro_world / "tasks")
    for mask in ("prefill_bidir", "causal"):
        expected = lm_eval.simple_evaluate(
            model=MaskedHFLM(str(model), mask=mask, batch_size=8), tasks=list(TASKS), task_manager=manager,
            limit=LIMIT, log_samples=True,
        )
        for task in TASKS:
            (samples_file,) = tmp_path.rglob(f"samples_{task}_*.jsonl")
            cli_samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
            matches = loglikelihoods(cli_samples) == pytest.approx(loglikelihoods(expected["samples"][task]), abs=1e-4)
            assert matches == (mask == "prefill_bidir"), (task, mask)
        if mask == "prefill_bidir":
            assert {task: results["results"][task]["acc,none"] for task in TASKS} == {
                task: expected["results"][task]["acc,none"] for task in TASKS
            }
