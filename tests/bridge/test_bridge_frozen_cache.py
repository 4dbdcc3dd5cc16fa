"""The source-state and KL-baseline caches on micro models: equal to the on-the-fly values, keyed by
everything they depend on, skipped past their size cap, never left looking finished by a killed
build; a run reading them trains the uncached run's translator without loading the source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablation.bridge import losses as L
from ablation.bridge.batches import tokenize_source
from ablation.bridge.frozen import hidden_states
from ablation.bridge.frozen_cache import (
    INDEX_FILE,
    build_run_kl_baselines,
    build_run_source_states,
    build_source_states,
    kl_baseline_rows,
    kl_estimate_bytes,
    open_kl_baselines,
    open_source_states,
    source_state_prompts,
)
from ablation.bridge.data import load_rows
from ablation.bridge.settings import kl_baseline_key, source_state_key, source_state_name
from ablation.bridge.model import Bridge
from ablation.bridge.training import run_bridge
from tests.bridge.micro_runs import EMBEDDED, EVAL, frozen_pair, job, kill_after_first_checkpoint, models, settings, start_bridge_process

REPOSITORY = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5  # float32: the cache stores the same forward's values, batched differently


def build_kl(world, out: Path, max_gb: float = 1.0, **changes) -> tuple[dict, dict]:
    s = settings(**changes)
    key = kl_baseline_key(s, models(world)["tgt"], EMBEDDED, EVAL, "cpu")
    index = build_run_kl_baselines(
        out / INDEX_FILE, key=key, settings=s, model=models(world)["tgt"], dataset_source=EMBEDDED,
        embedded_data_dir=str(world["data"]), eval_settings=EVAL, max_gb=max_gb, device="cpu", config={},
    )  # fmt: skip
    return index, key


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


@pytest.mark.parametrize("kl_baseline", ["text_prompt", "answer_alone"])
def test_cached_kl_baselines_equal_the_on_the_fly_ones(micro_bridge_world, tmp_path, kl_baseline):
    """The cache stores the target's logits at the compared positions: the KL loss read from it equals the step's to float tolerance."""
    index, key = build_kl(micro_bridge_world, tmp_path / "kl", kl_baseline=kl_baseline)
    leads, answers = kl_baseline_rows(settings(kl_baseline=kl_baseline), EMBEDDED, str(micro_bridge_world["data"]), EVAL)
    assert index["cached"] and index["prompts"] == len(set(zip(leads, answers)))
    assert index["stored_bytes"] <= index["estimated_bytes"] and index["width"] == 350  # the micro target's vocabulary
    bridge = Bridge(*frozen_pair(micro_bridge_world), settings(kl_baseline=kl_baseline), "gsm8k")
    for start in (0, 9, len(leads) - 5):  # batches other than the build's
        chunk = slice(start, start + 5)
        expected, expected_valid = bridge.kl_baseline(leads[chunk], answers[chunk])
        bridge.kl_baselines = open_kl_baselines(tmp_path / "kl" / INDEX_FILE, key)
        cached, valid = bridge.kl_baseline(leads[chunk], answers[chunk])
        bridge.kl_baselines = None
        assert torch.equal(valid, expected_valid)
        assert torch.allclose(cached[valid], expected[valid], atol=TOLERANCE)
        bridged = torch.randn(5, 30, 350)
        positions = torch.arange(settings()["kl_tokens"]).expand(5, -1).clone()
        exact, read = (L.kl_to_log_probs(bridged, positions, lp, ok) for lp, ok in ((expected, expected_valid), (cached, valid)))
        assert abs(float(exact - read)) <= TOLERANCE * max(1.0, float(exact))
    assert open_kl_baselines(tmp_path / "kl" / INDEX_FILE, key).batch(["unseen"], ["#### 1"], 4, "cpu") is None


def test_the_kl_estimate_is_positions_times_vocabulary_times_bytes():
    assert kl_estimate_bytes([3, 30, 20], 20, 32_000, "bfloat16") == (3 + 20 + 20) * 32_000 * 2
    assert kl_estimate_bytes([5], 20, 350, "float32") == 5 * 350 * 4


@pytest.mark.parametrize(
    "change, shared",
    [
        ({"settings": {"kl_tokens": 5}}, False),
        ({"settings": {"kl_baseline": "answer_alone"}}, False),
        ({"settings": {"max_answer_tokens": 8}}, False),
        ({"model": {"revision": "0123abcd"}}, False),
        ({"settings": {"train_prompt": "eval"}}, False),  # the text_prompt baseline reads the prompt
        ({"settings": {"source_layer": 1, "lr": 1.0, "soft_tokens": 2}}, True),  # the translator's settings never matter
    ],
)
def test_a_change_to_the_kl_key_builds_another_cache(micro_bridge_world, change, shared):
    model = models(micro_bridge_world)["tgt"]
    base = kl_baseline_key(settings(), model, EMBEDDED, EVAL, "cpu")
    changed = kl_baseline_key(settings(**change.get("settings", {})), {**model, **change.get("model", {})}, EMBEDDED, EVAL, "cpu")
    assert (source_state_name(changed) == source_state_name(base)) == shared
    alone = {"kl_baseline": "answer_alone"}  # reads no prompt: the prompt form never matters
    assert kl_baseline_key(settings(**alone), model, EMBEDDED, EVAL, "cpu") == kl_baseline_key(
        settings(**alone, train_prompt="eval", max_prompt_tokens=64), model, EMBEDDED, {**EVAL, "few_shot": 2}, "cpu"
    )


def test_a_kl_cache_past_its_cap_is_not_built(micro_bridge_world, tmp_path, caplog):
    index, key = build_kl(micro_bridge_world, tmp_path / "kl", max_gb=1e-9)
    assert not index["cached"] and index["estimated_bytes"] > 1
    assert sorted(path.name for path in (tmp_path / "kl").iterdir()) == [INDEX_FILE]
    with caplog.at_level("WARNING"):
        assert open_kl_baselines(tmp_path / "kl" / INDEX_FILE, key) is None
    assert "on the fly" in caplog.text


def test_translator_after_steps_matches_the_uncached_run(micro_bridge_world, tmp_path):
    """N training steps read from both caches give the translator the uncached run gives, to float tolerance."""
    _, key = build(micro_bridge_world, tmp_path / "cache")
    _, kl_key = build_kl(micro_bridge_world, tmp_path / "kl")

    rows = load_rows("gsm8k", EMBEDDED, "train", str(micro_bridge_world["data"]))
    trained = []
    for cached in (False, True):
        torch.manual_seed(0)
        bridge = Bridge(*frozen_pair(micro_bridge_world), settings(), "gsm8k")
        if cached:
            bridge.source_states = open_source_states(tmp_path / "cache" / INDEX_FILE, key)
            bridge.kl_baselines = open_kl_baselines(tmp_path / "kl" / INDEX_FILE, kl_key)
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
from tests.bridge.micro_runs import frozen_pair
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


def test_a_run_reading_both_caches_restarts_a_run_killed_uncached_and_matches_it(micro_bridge_world, baselines, tmp_path, caplog):
    """A run killed after a checkpoint without the caches restarts from step 0 when rerun with them
    (which caches a run reads is in its resume hash), never loads the source, and trains the
    translator an uncached run trains, to float tolerance."""
    changes = dict(train_steps=8, eval_every=4, checkpoint_every=2, early_stop_patience=0)
    _, key = build(micro_bridge_world, tmp_path / "cache")
    _, kl_key = build_kl(micro_bridge_world, tmp_path / "kl")
    caches = {"source_states": {"index": str(tmp_path / "cache" / INDEX_FILE), "key": key},
              "kl_baselines": {"index": str(tmp_path / "kl" / INDEX_FILE), "key": kl_key}}  # fmt: skip
    killed = start_bridge_process(job(micro_bridge_world, baselines, tmp_path / "run", **changes), tmp_path / "killed.json")
    assert kill_after_first_checkpoint(killed, tmp_path / "run") is not None
    with caplog.at_level("INFO"):
        rerun = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", **changes), **caches)
    assert "is not loaded" in caplog.text
    assert rerun["resume"]["resumes"] == 0 and "settings or inputs changed" in rerun["resume"]["restarted_because"]
    assert rerun["caches_read"]["source_states"] and rerun["caches_read"]["kl_baselines"]
    assert "computed at every step" not in caplog.text
    with caplog.at_level("INFO"):
        fresh = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "fresh", **changes))
    assert "the source's states are computed at every step: no cache for this run" in caplog.text
    assert fresh["caches_read"] == {"source_states": None, "kl_baselines": None}
    cached, uncached = (torch.load(tmp_path / name / "translator.pt", weights_only=False)["state_dict"] for name in ("run", "fresh"))
    for name, value in uncached.items():
        assert torch.allclose(value, cached[name], atol=1e-4), name
