"""The offline path: a hub model found in the Hugging Face cache, pinned by prefetch, evaluated offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from ablation.config import validate_config
from ablation.prefetch import pinned_revision
from ablation.prefill.study import ORIGINAL_TASKS, hub_tasks

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPOSITORY = Path(__file__).resolve().parents[2]


def hub_cache_with(model_dir: Path, cache: Path, repo_id: str) -> Path:
    """A Hugging Face hub cache holding ``model_dir`` as ``repo_id`` at main = COMMIT, as a download leaves it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / COMMIT, ignore=shutil.ignore_patterns(".*"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


OFFLINE_RUN = """
import json, sys
from ablation.prefill.evaluate import evaluate_model
from ablation.prefetch import pinned_revision, prefetch

record = prefetch(model_id="study/tiny-model", revision="main", tasks=[], finetune_dataset=None, out_path=sys.argv[1])
metrics = evaluate_model(
    model_id="study/tiny-model", revision=pinned_revision(sys.argv[1], "main"), mask="prefill_bidir",
    output_dir=sys.argv[2], config={}, task_set="tiny", tasks_dir=sys.argv[3], limit=3,
)
print(json.dumps(metrics["provenance"]["model"]))
"""


def test_a_prefetched_hub_model_is_pinned_and_evaluated_offline(micro_world, tmp_path):
    cache = hub_cache_with(micro_world / "base_model", tmp_path / "hub", "study/tiny-model")
    environment = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OFFLINE_RUN), str(tmp_path / "prefetch.json"), str(tmp_path / "eval"), str(micro_world / "tasks")],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "prefetch.json").read_text())
    assert record["model"] == {"id": "study/tiny-model", "revision": "main", "resolved_commit": COMMIT}
    identity = json.loads(result.stdout.strip().splitlines()[-1])
    assert identity == {"id": "study/tiny-model", "revision": COMMIT, "resolved_commit": COMMIT}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["tasks"]


def test_without_a_prefetch_the_configured_revision_stands(tmp_path):
    assert pinned_revision(None, "v1.0") == "v1.0"
    record = tmp_path / "prefetch.json"
    record.write_text(json.dumps({"model": {"id": "./local", "local": True}}))
    assert pinned_revision(record, None) is None


BRIDGE_PREFETCH = """
import json, sys
from ablation.bridge.frozen import load_frozen
from ablation.prefetch import pinned_revision, prefetch

prefetch(model_id=None, revision=None, tasks=[], finetune_dataset=None, out_path=sys.argv[1],
         bridge_models={"llama_tiny": {"id": "study/tiny-bridge", "revision": "main"}})
revision = pinned_revision(sys.argv[1], "main", bridge_model="llama_tiny")
frozen = load_frozen("llama_tiny", "study/tiny-bridge", revision, dtype="float32", device="cpu")
print(json.dumps({"revision": revision, "width": frozen.width}))
"""


def test_the_bridges_hub_models_are_pinned_by_prefetch_and_load_offline(micro_bridge_world, tmp_path):
    cache = hub_cache_with(micro_bridge_world["target"], tmp_path / "hub", "study/tiny-bridge")
    environment = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BRIDGE_PREFETCH), str(tmp_path / "prefetch.json")],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "prefetch.json").read_text())
    assert record["model"] is None
    assert record["bridge_models"] == {"llama_tiny": {"id": "study/tiny-bridge", "revision": "main", "resolved_commit": COMMIT}}
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"revision": COMMIT, "width": 24}


def test_the_hub_task_sets_datasets_are_prefetched_and_the_tiny_worlds_are_not():
    preset = validate_config(yaml.safe_load((REPOSITORY / "presets" / "ministral-3b.yaml").read_text()))
    assert hub_tasks(preset["eval"]["task_set"], preset["eval"]["tasks"]) == ORIGINAL_TASKS
    assert hub_tasks("real", ["piqa"]) == ("piqa",)
    assert hub_tasks("tiny") == ()
