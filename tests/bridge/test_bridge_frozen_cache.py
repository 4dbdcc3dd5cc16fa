"""The source-state cache on micro models: equal to the on-the-fly states, keyed by everything it
depends on, skipped past its size cap, and never left looking finished by a killed build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablation.bridge.batches import tokenize_source
from ablation.bridge.frozen import hidden_states
from ablation.bridge.frozen_cache import (
    INDEX_FILE,
    build_run_source_states,
    build_source_states,
    open_source_states,
    source_state_prompts,
)
from ablation.bridge.settings import source_state_key, source_state_name
from ablation.bridge.model import Bridge
from tests.bridge.test_bridge_training import EMBEDDED, EVAL, frozen_pair, models, settings

REPOSITORY = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5  # float32: the cache stores the same forward's values, batched differently


def build(world, out: Path, max_gb: float = 1.0, **changes) -> tuple[dict, dict]:
    s = settings(**changes)
    key = source_state_key(s, models(world)["src"], EMBEDDED, EVAL, "cpu")
    index = build_run_source_states(
        out / INDEX_FILE, key=key, settings=s, model=models(world)["src"], dataset_source=EMBEDDED,
        embedded_data_dir=str(world["data"]), eval_settings=EVAL, max_gb=max_gb, device="cpu", config={},
    )  # fmt: skip
    return index, key


def test_cached_states_equal_the_on_the_fly_states(micro_bridge_world, tmp_path):
    index, key = build(micro_bridge_world, tmp_path / "cache")
    source, _ = frozen_pair(micro_bridge_world)
    prompts = source_state_prompts(settings(), EMBEDDED, str(micro_bridge_world["data"]), EVAL)
    assert index["cached"] and index["prompts"] == len(set(prompts))
    cache = open_source_states(tmp_path / "cache" / INDEX_FILE, key)
    for start in (0, 5, len(prompts) - 7):  # batches other than the build's, eval prompts included
        chunk = prompts[start : start + 7]
        batch = tokenize_source(source.tokenizer, chunk, settings()["max_prompt_tokens"])
        expected = hidden_states(source, batch, -1)
        states, mask = cache.batch(chunk, "cpu")
        assert torch.equal(mask, batch["attention_mask"].bool())
        assert torch.allclose(states[mask], expected[mask], atol=TOLERANCE)
        assert not states[~mask].any()  # never read: the translators mask padded positions
    assert cache.batch(["a prompt the cache never saw"], "cpu") is None


def test_translator_after_steps_matches_the_uncached_run(micro_bridge_world, tmp_path):
    """N training steps read from the cache give the translator the uncached run gives, to float tolerance."""
    _, key = build(micro_bridge_world, tmp_path / "cache")
    from ablation.bridge.data import load_rows

    rows = load_rows("gsm8k", EMBEDDED, "train", str(micro_bridge_world["data"]))
    trained = []
    for cached in (False, True):
        torch.manual_seed(0)
        bridge = Bridge(*frozen_pair(micro_bridge_world), settings(), "gsm8k")
        if cached:
            bridge.source_states = open_source_states(tmp_path / "cache" / INDEX_FILE, key)
        optimizer = torch.optim.AdamW(bridge.translator.parameters(), lr=1e-3)
        for step in range(4):
            values = bridge.losses(bridge.translator, rows[step * 4 : step * 4 + 4], step + 2)  # every loss active
            optimizer.zero_grad()
            values["total"].backward()
            optimizer.step()
        trained.append(bridge.translator.state_dict())
    for name, value in trained[0].items():
        assert torch.allclose(value, trained[1][name], atol=1e-4), name


@pytest.mark.parametrize(
    "change",
    [
        {"settings": {"source_layer": 1}},
        {"settings": {"train_prompt": "eval"}},
        {"settings": {"max_prompt_tokens": 64}},
        {"model": {"revision": "0123abcd"}},
        {"eval": {"few_shot": 2}},
    ],
)
def test_a_change_to_the_key_builds_another_cache(micro_bridge_world, change):
    model = models(micro_bridge_world)["src"]
    base = source_state_key(settings(), model, EMBEDDED, EVAL, "cpu")
    changed = source_state_key(
        settings(**change.get("settings", {})), {**model, **change.get("model", {})}, EMBEDDED, {**EVAL, **change.get("eval", {})}, "cpu"
    )
    assert source_state_name(changed) != source_state_name(base)
    assert source_state_name(source_state_key(settings(seed=9, lr=1.0), model, EMBEDDED, EVAL, "cpu")) == source_state_name(base)


def test_a_cache_built_for_another_key_is_refused(micro_bridge_world, tmp_path):
    _, key = build(micro_bridge_world, tmp_path / "cache")
    with pytest.raises(ValueError, match="was built for"):
        open_source_states(tmp_path / "cache" / INDEX_FILE, {**key, "source_layer": 1})


def test_past_the_size_cap_runs_compute_on_the_fly(micro_bridge_world, tmp_path, caplog):
    index, key = build(micro_bridge_world, tmp_path / "cache", max_gb=1e-9)
    assert not index["cached"] and index["estimated_bytes"] > 1
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [INDEX_FILE]  # nothing but the index written
    with caplog.at_level("WARNING"):
        assert open_source_states(tmp_path / "cache" / INDEX_FILE, key) is None
    assert "on the fly" in caplog.text


KILLED_BUILD = """
import os, signal, sys
import ablation.bridge.frozen_cache as cache
from safetensors.torch import save_file
from tests.bridge.test_bridge_training import frozen_pair
cache.SHARD_BYTES = 1  # one shard per batch
written = []
def save_then_die(tensors, path):
    save_file(tensors, path)
    written.append(path)
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
cache.save_file = save_then_die
source, _ = frozen_pair({"source": sys.argv[2], "target": sys.argv[3]})
cache.build_source_states(sys.argv[1], source, [f"question {i}" for i in range(12)], key={}, layer=-1, max_tokens=32,
                          dtype="float32", max_bytes=10**9, batch_size=4)
"""


def test_a_killed_build_leaves_nothing_finished_and_its_rerun_completes(micro_bridge_world, tmp_path):
    out = tmp_path / "cache"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, str(out), str(micro_bridge_world["source"]), str(micro_bridge_world["target"])],
        cwd=REPOSITORY, capture_output=True, text=True,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert len(list(out.with_name("cache.partial").glob("*.safetensors"))) == 2
    assert not (out / INDEX_FILE).exists()
    source, _ = frozen_pair(micro_bridge_world)
    index = build_source_states(out, source, [f"question {i}" for i in range(12)], key={}, layer=-1, max_tokens=32,
                                dtype="float32", max_bytes=10**9, batch_size=4)  # fmt: skip
    assert index["prompts"] == 12 and json.loads((out / INDEX_FILE).read_text())["cached"]
    assert not out.with_name("cache.partial").exists()
    assert open_source_states(out / INDEX_FILE, {}).batch(["question 11"], "cpu") is not None
