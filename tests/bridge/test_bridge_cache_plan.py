"""The caches' size estimate made before any job runs (ablation.bridge.cache_plan): its arithmetic at
the real presets' scale, its agreement with a cache built on micro models, and which runs
``bridge.source_state_cache.prompts`` leaves to compute on the fly."""

from __future__ import annotations

import copy
import statistics
from pathlib import Path

import pytest
import yaml

from ablation.bridge.cache_plan import (
    HUB_DATASETS,
    LAYOUT_LEFT_OUT,
    HUB_MODELS,
    DatasetStats,
    cache_bytes,
    cache_plan,
    cached_run_keys,
    format_plan,
    informative,
    longest_first,
    shared_keys,
    kl_baseline_estimate,
    prompt_tokens,
    source_state_estimate,
)
from ablation.bridge.data import load_rows
from ablation.bridge.frozen import load_frozen_tokenizer
from ablation.bridge.frozen_cache import INDEX_FILE, build_run_source_states
from ablation.bridge.prompts import task_prompt
from ablation.bridge.settings import resolve_runs, source_state_key, trained_run_of
from ablation.config import ConfigError, load_schema, validate_config
from tests.bridge.micro_runs import EMBEDDED, EVAL, models, settings

REPOSITORY = Path(__file__).resolve().parents[2]
MISTRAL = HUB_MODELS["mistralai/Mistral-7B-Instruct-v0.3"]
GSM8K = {"path": "gsm8k", "name": "main", "train_split": "train", "eval_split": "test", "prompts": "own", "scoring": "own"}
PRESET_EVAL = {"samples": 200, "batch_size": 36, "max_new_tokens": 256, "few_shot": 8, "few_shot_seed": 42}
# a mean-length prompt at a measured characters-a-token against the real prompts' token counts (0.1% apart when written)
MICRO_TOLERANCE = 0.05


def preset_config(name: str, token_layout: str | None = None, **cache) -> dict:
    config = yaml.safe_load((REPOSITORY / "presets" / f"{name}.yaml").read_text())
    config["bridge"]["source_state_cache"] = {**config["bridge"].get("source_state_cache", {}), "enabled": True, **cache}
    if token_layout is not None:
        config["bridge"]["defaults"]["token_layout"] = token_layout
    return validate_config(config)


def plan_of(config: dict) -> dict[tuple[str, str], object]:
    """The plan of the runs that train (as the Snakefile makes it), by (kind, each run reading the cache)."""
    runs = resolve_runs(config["bridge"], load_schema(), config["seed"])
    trained = {run: runs[run] for run in dict.fromkeys(trained_run_of(runs).values())}
    return {(entry.kind, run): entry for entry in cache_plan(trained, config["bridge"], config["model"]["device"]) for run in entry.runs}


def test_the_arithmetic_is_rows_times_tokens_times_width_times_bytes():
    # GSM8K train at the 8-shot prompt for Mistral-7B's last layer, bf16: tens of GB
    assert cache_bytes(7473 * 1200, 4096, "bfloat16") == 73_462_579_200
    assert cache_bytes(10, 16, "float32") == 640
    assert prompt_tokens(4534, 8192) == 1195  # ceil(4534 / 3.8) + BOS
    assert prompt_tokens(4534, 512) == 512  # the source reads at most max_prompt_tokens


def test_the_real_presets_estimates_at_hand_checkable_scale():
    s = settings(dataset="gsm8k", max_prompt_tokens=8192, max_answer_tokens=256, kl_tokens=20, train_answer_eos=True)
    stats = HUB_DATASETS[("gsm8k", "main")]
    simple = source_state_estimate(s, GSM8K, PRESET_EVAL, "bfloat16", MISTRAL, stats)
    few_shot = source_state_estimate({**s, "train_prompt": "eval"}, GSM8K, PRESET_EVAL, "bfloat16", MISTRAL, stats)
    assert 4e9 < simple.bytes < 10e9  # ~100 tokens a question
    assert 60e9 < few_shot.bytes < 100e9  # ~1,200 tokens a question: tens of GB
    llama = HUB_MODELS["meta-llama/Meta-Llama-3.1-8B-Instruct"]
    kl = kl_baseline_estimate(s, GSM8K, "bfloat16", llama, stats)
    assert kl.bytes == 7473 * 20 * 128_256 * 2  # every GSM8K solution is longer than kl_tokens
    assert kl_baseline_estimate(s, GSM8K, "bfloat16", llama, None).bytes is None  # no table entry: not guessed


def test_the_estimate_agrees_with_a_micro_cache_built_from_the_same_prompts(micro_bridge_world, tmp_path):
    s = settings(max_prompt_tokens=256)  # the micro source's whole context: no prompt is cut, so lengths decide
    model = models(micro_bridge_world)["src"]
    data = str(micro_bridge_world["data"])
    train, test = (load_rows("gsm8k", EMBEDDED, split, data) for split in ("train", "test"))
    source = load_frozen_tokenizer("src", model["id"], None)
    tokenizer, width = source.tokenizer, source.width
    # characters a token of the same prompt form, measured on prompts the cache never holds: the eval rows past bridge.eval.samples
    unseen = [task_prompt("gsm8k", row) for row in test[EVAL["samples"] :]]
    chars_per_token = sum(map(len, unseen)) / sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in unseen)
    stats = DatasetStats(rows={"train": len(train), "test": len(test)}, question=round(statistics.mean(len(r["question"]) for r in train)),
                         answer=round(statistics.mean(len(r["answer"]) for r in train)))  # fmt: skip
    estimate = source_state_estimate(s, EMBEDDED, EVAL, "float32", {"width": width, "vocab": 0}, stats, chars_per_token)
    index = build_run_source_states(
        tmp_path / INDEX_FILE, key=source_state_key(s, model, EMBEDDED, EVAL, "cpu"), settings=s, model=model, dataset_source=EMBEDDED,
        embedded_data_dir=data, eval_settings=EVAL, max_gb=1.0, device="cpu", config={},
    )  # fmt: skip
    assert index["cached"] and index["width"] == width
    assert index["stored_bytes"] == index["estimated_bytes"]  # the job's own count is exact
    assert abs(estimate.bytes - index["stored_bytes"]) <= MICRO_TOLERANCE * index["stored_bytes"], (estimate, index["stored_bytes"])


def test_the_default_leaves_runs_training_on_the_8_shot_prompt_to_compute_on_the_fly():
    # the original's token layout pads per batch, so none of its runs reads a cache
    assert {entry.plan for entry in plan_of(preset_config("latentwire-original")).values()} == {LAYOUT_LEFT_OUT}
    plan = plan_of(preset_config("latentwire-original", token_layout="ours"))  # its 8-shot prompts with our layout
    phase1 = plan[("source states", "phase1_all_fix")]
    assert phase1.size.bytes > 60e9 and phase1.plan.startswith("on the fly: trains on the evaluation prompt")
    assert plan[("KL baselines", "phase2_swap")].plan == "built"  # Mistral's 32k vocabulary: ~10 GB
    assert plan[("KL baselines", "phase1_all_fix")].plan.startswith("on the fly: past max_gb 20")  # Llama's 128k
    every_run = plan_of(preset_config("latentwire-original", "ours", prompts="all"))
    assert every_run[("source states", "phase1_all_fix")].plan.startswith("on the fly: past max_gb 20")
    assert plan_of(preset_config("latentwire-original", "ours", prompts="all", max_gb=100))[("source states", "phase1_all_fix")].plan == "built"


def test_the_improved_preset_caches_its_simple_prompt_and_prints_the_plan():
    config = preset_config("latentwire-gsm8k")
    plan = plan_of(config)
    assert plan[("source states", "phase1_all_fix")].plan == "built"
    table = format_plan(list(dict.fromkeys(plan.values())), config["bridge"]["source_state_cache"])
    assert "prompts task_prompt_runs" in table and "7,473 × " in table and "128,256" in table


def test_min_runs_leaves_a_key_of_a_single_run_to_compute_on_the_fly():
    keys = {"1a": {"layer": 1}, "2a": {"layer": 1}, "3a": {"layer": 2}}
    assert shared_keys(keys, 1) == keys and shared_keys(keys, 2) == {"1a": {"layer": 1}, "2a": {"layer": 1}}
    assert shared_keys(keys, 3) == {}
    plan = plan_of(preset_config("latentwire-gsm8k", min_runs=2))
    assert {entry.plan for entry in plan.values()} == {"on the fly: read by 1 run, fewer than min_runs 2"}
    tiny = validate_config(yaml.safe_load((REPOSITORY / "config.yaml").read_text()))
    shared = {run for (kind, run), entry in plan_of(tiny).items() if not entry.plan.startswith("on the fly: read by")}
    assert shared == {"1a", "1b", "2a", "2b", "ablB"}  # the GSM8K runs on one source layer; 3a and the swap alone


def test_the_runs_reading_each_cache_are_routed_once_for_the_rules_and_the_bench():
    tiny = validate_config(yaml.safe_load((REPOSITORY / "config.yaml").read_text()))
    runs = resolve_runs(tiny["bridge"], load_schema(), tiny["seed"])
    trained = {run: runs[run] for run in dict.fromkeys(trained_run_of(runs).values())}
    states, kl = cached_run_keys(trained, tiny["bridge"], "cpu")
    assert set(states) == set(kl) == {"1a", "1b", "2a", "2b", "ablB"}  # one GSM8K key each; 3a and the swap alone
    assert len({str(key) for key in states.values()}) == len({str(key) for key in kl.values()}) == 1
    off = copy.deepcopy(tiny["bridge"])
    off["source_state_cache"]["enabled"] = False
    assert cached_run_keys(trained, off, "cpu") == ({}, {})
    every = copy.deepcopy(tiny["bridge"])
    every["source_state_cache"]["min_runs"] = 1
    states, kl = cached_run_keys(trained, every, "cpu")
    assert set(states) == set(trained) and set(kl) == {run for run, s in trained.items() if s["kl_weight"] > 0}
    priorities = longest_first(trained, *cached_run_keys(trained, tiny["bridge"], "cpu"))
    # 3a computes its frozen outputs on the fly for 600 steps, the swap for 200; the GSM8K runs read caches
    assert max(priorities, key=priorities.get) == "3a" and min(priorities, key=priorities.get) == "swap"
    assert priorities["3a"] == pytest.approx(1.9) and all(1 <= value <= 1.9 for value in priorities.values())
    assert priorities["swap"] < priorities["1a"] == priorities["ablB"] < priorities["3a"]
    eight_shot = {run: {**s, "train_prompt": "eval"} if run == "1b" else s for run, s in trained.items()}
    states, kl = cached_run_keys(eight_shot, every, "cpu")
    assert "1b" not in states and "1b" in kl  # prompts task_prompt_runs: 1b computes its source states on the fly


def test_the_plan_is_printed_only_where_it_says_something():
    assert informative(list(dict.fromkeys(plan_of(preset_config("latentwire-gsm8k")).values())))
    tiny = validate_config(yaml.safe_load((REPOSITORY / "config.yaml").read_text()))
    assert tiny["bridge"]["source_state_cache"]["enabled"]
    # the tiny world's models and data are in no table: every size is unknown, and nothing is left on the fly
    assert not informative(list(dict.fromkeys(plan_of(tiny).values())))


def test_a_bad_prompts_value_names_the_key_and_the_allowed_values():
    config = copy.deepcopy(yaml.safe_load((REPOSITORY / "presets" / "latentwire-gsm8k.yaml").read_text()))
    config["bridge"]["source_state_cache"]["prompts"] = "eight_shot"
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "bridge.source_state_cache.prompts" in message and "task_prompt_runs" in message and "all" in message
