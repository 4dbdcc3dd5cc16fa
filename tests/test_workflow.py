"""Real Snakemake executions of the workflow: the micro config end to end, the real preset as a dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
MICRO_CONFIG = REPOSITORY / "tests" / "configs" / "micro.yaml"
PRESET = REPOSITORY / "presets" / "ministral-3b.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPOSITORY / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(configfile), "--cores", "2", *args],
        capture_output=True, text=True, env=environment, timeout=1200,
    )


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("micro_run")
    result = snakemake(workdir, MICRO_CONFIG)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_micro_config_runs_end_to_end(micro_run):
    results = micro_run / "results"
    assert (results / "world" / "base_model" / "config.json").exists()
    assert (results / "world" / "base_model" / "model.safetensors").exists()
    assert (results / "world" / "tokenizer" / "tokenizer.json").exists()
    for mask in ("causal", "prefill_bidir", "full_bidir"):
        metrics = json.loads((results / "eval" / "base" / mask / "metrics.json").read_text())
        assert metrics["provenance"]["mask"] == mask
        assert metrics["task_set"] == "tiny" and len(metrics["tasks"]) == 5
        assert (micro_run / "logs" / "eval_model" / "base" / f"{mask}.log").stat().st_size > 0
    for rule in ("build_world_data", "train_tokenizer", "pretrain_base_model"):
        assert (micro_run / "logs" / rule / "world.log").exists()


def test_a_finished_run_has_nothing_left_to_do(micro_run):
    result = snakemake(micro_run, MICRO_CONFIG, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_the_real_preset_validates_and_plans_its_jobs(tmp_path):
    result = snakemake(tmp_path, PRESET, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "eval_model" in output and "results/ministral-3b/eval/base/prefill_bidir/metrics.json" in output


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda config: config["eval"].update(maks=["causal"]), "'eval.maks'"),
        (lambda config: config["eval"].update(batch_size="big"), "'eval.batch_size'"),
        (lambda config: config["eval"].update(masks=["causal", "no_mask"]), "'eval.masks[1]'"),
    ],
    ids=["misspelled-key", "wrong-type", "unknown-mask"],
)
def test_a_bad_config_stops_before_any_job(tmp_path, change, named):
    config = yaml.safe_load(MICRO_CONFIG.read_text())
    change(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in output
    assert not (tmp_path / "results").exists()
