"""The micro bridge run the bridge tests share: its settings, model specs, job arguments and frozen pair."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ablation.bridge.frozen import load_frozen
from ablation.bridge.training import latest_checkpoint
from ablation.bridge.settings import schema_run_defaults
from ablation.config import load_schema

REPOSITORY = Path(__file__).resolve().parents[2]

EMBEDDED = {"path": "embedded", "name": None, "revision": None, "train_split": "train", "eval_split": "test", "prompts": "own", "scoring": "own"}
EVAL = {"samples": 8, "batch_size": 4, "max_new_tokens": 10, "few_shot": 0, "few_shot_seed": 42}
MICRO_RUN = {
    "source": "src", "target": "tgt", "translator": "cross", "soft_tokens": 4, "depth": 1, "bottleneck": 16, "heads": 2,
    "dit_dim": 16, "dit_depth": 1, "dit_heads": 2, "train_steps": 4, "warmup_steps": 2, "eval_every": 2,
    "checkpoint_every": 2, "per_device_batch": 4, "max_prompt_tokens": 128, "max_answer_tokens": 64, "seed": 3,
    "precision": "fp32", "description": "",
}  # fmt: skip


def settings(**changes) -> dict:
    return {**schema_run_defaults(load_schema()), **MICRO_RUN, **changes}


def models(world) -> dict:
    return {
        "src": {"id": str(world["source"]), "revision": None, "dtype": "float32"},
        "tgt": {"id": str(world["target"]), "revision": None, "dtype": "float32"},
    }


def job(world, baselines, run_dir, **changes) -> dict:
    return dict(
        run="micro", settings=settings(**changes), models=models(world), dataset_source=EMBEDDED,
        embedded_data_dir=str(world["data"]), eval_settings=EVAL, baseline_samples=baselines,
        source_metrics=str(Path(baselines["source"]).with_suffix(".json")), run_dir=str(run_dir), config={}, device="cpu",
    )  # fmt: skip


def frozen_pair(world):
    spec = models(world)
    return [load_frozen(name, spec[name]["id"], None, dtype="float32", device="cpu") for name in ("src", "tgt")]


# a bridge run in a process of its own (killed mid-run by the resume tests): the job file is its argument
RUN_JOB = "import json, sys; from ablation.bridge.training import run_bridge; run_bridge(**json.load(open(sys.argv[1])))"


def start_bridge_process(job_arguments: dict, job_file: Path) -> subprocess.Popen:
    """``run_bridge(**job_arguments)`` in a process of its own, at one thread, its job written to ``job_file``."""
    job_file.write_text(json.dumps(job_arguments))
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", RUN_JOB, str(job_file)], env=environment, stderr=subprocess.PIPE)


def kill_after_first_checkpoint(process: subprocess.Popen, run_dir: Path) -> Path | None:
    """SIGKILL ``process`` as soon as ``run_dir`` holds a checkpoint (or after 300 s); that checkpoint, if any."""
    checkpoints = Path(run_dir) / "checkpoints"
    deadline = time.monotonic() + 300
    while latest_checkpoint(checkpoints) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return latest_checkpoint(checkpoints)
