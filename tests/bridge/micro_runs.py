"""The micro bridge run the bridge tests share: its settings, model specs, job arguments and frozen pair."""

from __future__ import annotations

from pathlib import Path

from ablation.bridge.frozen import load_frozen
from ablation.bridge.settings import schema_run_defaults
from ablation.config import load_schema

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
