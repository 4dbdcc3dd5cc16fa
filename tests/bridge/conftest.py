"""Fixtures the bridge tests share: the micro world's source-alone and target-alone answers."""

from __future__ import annotations

import pytest

from ablation.bridge.baselines import evaluate_alone
from tests.bridge.micro_runs import EMBEDDED, EVAL, models


@pytest.fixture(scope="module")
def baselines(micro_bridge_world, tmp_path_factory):
    """Source-alone and target-alone answers on the micro GSM8K eval set."""
    out = tmp_path_factory.mktemp("baselines")
    paths = {}
    for role, name in (("source", "src"), ("target", "tgt")):
        evaluate_alone(
            model_name=name, model=models(micro_bridge_world)[name], dataset="gsm8k", dataset_source=EMBEDDED,
            embedded_data_dir=micro_bridge_world["data"], eval_settings=EVAL, metrics_path=out / f"{name}.json",
            samples_path=out / f"{name}.jsonl", config={}, seed=1, device="cpu",
        )  # fmt: skip
        paths[role] = str(out / f"{name}.jsonl")
    return paths
