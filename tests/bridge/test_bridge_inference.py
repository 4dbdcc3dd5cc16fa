"""Seed 004's Ablation 4 on micro models: every baseline and what it measures, the summary's
statistics and compression accounting, the config errors; the bootstrap and McNemar helpers
against answers known in advance."""

from __future__ import annotations

import copy
import json
import logging
from math import comb

import numpy as np
import pytest
import yaml

from ablation import stats
from ablation.bridge.generation import kv_cache_tensors
from ablation.bridge.benchmark import (
    BASELINES,
    MB,
    RUNNERS,
    benchmark_baseline,
    cascade_prompt,
    compression,
    load_bench,
    run_inference_benchmark,
    token_budget_ids,
)
from ablation.bridge.training import run_bridge
from ablation.bridge.settings import inference_run
from ablation.config import ConfigError, validate_config
from tests.bridge.micro_runs import EMBEDDED, EVAL, job, models
from tests.helpers import REPOSITORY, planned_jobs, snakemake

K = 4  # the micro run's soft tokens
MICRO_BRIDGE = REPOSITORY / "tests" / "configs" / "micro_bridge.yaml"


@pytest.fixture(scope="module")
def trained(micro_bridge_world, baselines, tmp_path_factory):  # noqa: F811
    """A micro translator trained for two steps: its run directory."""
    run_dir = tmp_path_factory.mktemp("trained") / "micro"
    run_bridge(**job(micro_bridge_world, baselines, run_dir, train_steps=2, soft_tokens=K))
    return run_dir


def benchmark_job(world, run_dir, out_dir, **inference) -> dict:
    return dict(
        run="micro_reused", trained_run="micro", translator_path=str(run_dir / "translator.pt"), models=models(world),
        dataset_source=EMBEDDED, embedded_data_dir=str(world["data"]), eval_settings=EVAL,
        inference={"samples": None, "baselines": list(BASELINES), "batch_size": 4, **inference},
        out_dir=str(out_dir), config={}, device="cpu",
    )  # fmt: skip


@pytest.fixture(scope="module")
def benchmark(micro_bridge_world, trained, tmp_path_factory):
    """All five baselines over the whole micro test split (16 questions, batches of 4), and what it logged."""
    out_dir = tmp_path_factory.mktemp("inference")
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("ablation.bridge.benchmark")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        summary = run_inference_benchmark(**benchmark_job(micro_bridge_world, trained, out_dir))
    finally:
        logger.removeHandler(handler)
    rows = [json.loads(line) for line in (out_dir / "samples.jsonl").read_text().splitlines()]
    by_baseline = {name: [row for row in rows if row["baseline"] == name] for name in BASELINES}
    return {"summary": summary, "rows": by_baseline, "out_dir": out_dir, "log": "\n".join(messages)}


@pytest.fixture(scope="module")
def bench(micro_bridge_world, trained):
    return load_bench(trained / "translator.pt", models(micro_bridge_world), "cpu")


def examples_of(world, count):
    from ablation.bridge.data import eval_examples, load_rows

    rows = load_rows("gsm8k", EMBEDDED, "test", world["data"])
    return eval_examples("gsm8k", rows, [], {**EVAL, "samples": count, "batch_size": 1}, EMBEDDED)


# ---------------------------------------------------------------- the baselines
def test_every_baseline_answers_every_question_with_its_measurements(benchmark):
    summary, rows = benchmark["summary"], benchmark["rows"]
    assert summary["samples"] == 16 and summary["run"] == "micro_reused" and summary["trained_run"] == "micro"
    assert list(summary["baselines"]) == list(BASELINES)
    for name, baseline_rows in rows.items():
        assert [row["index"] for row in baseline_rows] == list(range(16)), name
        for row in baseline_rows:
            assert row["kv_cache_mb"] > 0 and row["latency_s"] > 0 and row["peak_memory_mb"] >= 0, name
            assert row["peak_memory_kind"] == "cpu_rss_growth" and row["batch_size"] == 4
            assert row["input_tokens"] > 0 and 0 <= row["output_tokens"] <= EVAL["max_new_tokens"]
            assert isinstance(row["correct"], bool) and row["extracted"]
        # four batches, each sample carries its batch's wall time
        assert len({row["latency_s"] for row in baseline_rows}) == 4
    # latent's target reads K soft tokens, then BOS and the answer request: the same count for every question
    assert len({row["input_tokens"] for row in rows["latent"]}) == 1
    assert rows["latent"][0]["input_tokens"] < min(row["input_tokens"] for row in rows["target_alone"])


def test_latent_answers_exactly_as_the_trained_runs_final_evaluation(benchmark, trained):
    """The benchmark reloads the trained translator and generates as Bridge.generate does."""
    final = [json.loads(line) for line in (trained / "eval_samples_step_final.jsonl").read_text().splitlines()]
    latent = {row["index"]: row["text"] for row in benchmark["rows"]["latent"]}
    assert [latent[row["index"]] for row in final] == [row["bridged_full"] for row in final]


def test_token_budget_reads_the_last_k_prompt_tokens(benchmark, bench, micro_bridge_world):
    tokenizer = bench.target.tokenizer
    example = examples_of(micro_bridge_world, 1)[0]
    prompt_ids = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
    request = tokenizer("\nAnswer the question above and end with '#### <number>'.", add_special_tokens=False)["input_ids"]
    ids, kept = token_budget_ids(tokenizer, example.prompt, "gsm8k", K)
    assert len(prompt_ids) > K and kept == K
    assert ids == [tokenizer.bos_token_id] + prompt_ids[-K:] + request
    assert token_budget_ids(tokenizer, example.prompt, "gsm8k", 10_000) == ([tokenizer.bos_token_id] + prompt_ids + request, len(prompt_ids))
    for row in benchmark["rows"]["token_budget"]:
        assert row["prompt_tokens_kept"] == K and row["input_tokens"] == 1 + K + len(request)


def test_cascade_hands_the_sources_text_answer_to_the_target(benchmark, bench, micro_bridge_world):
    examples = {e.index: e for e in examples_of(micro_bridge_world, 16)}
    source = {row["index"]: row for row in benchmark["rows"]["source_alone"]}
    drafts = [row["draft"] for row in benchmark["rows"]["cascade"]]
    assert any(draft.strip() for draft in drafts)
    for row in benchmark["rows"]["cascade"]:
        assert row["draft"] == source[row["index"]]["text"]  # the same greedy answer as source-alone
        prompt = cascade_prompt("gsm8k", examples[row["index"]].prompt, row["draft"])
        assert row["draft"].strip() in prompt and prompt.startswith(examples[row["index"]].prompt)
        assert row["input_tokens"] == len(bench.target.tokenizer(prompt)["input_ids"])  # the target read exactly that
        assert row["source_output_tokens"] == source[row["index"]]["output_tokens"]
        assert row["kv_cache_mb"] == pytest.approx(row["kv_cache_mb_source"] + row["kv_cache_mb_target"])


@pytest.mark.parametrize("name", BASELINES)
def test_kv_cache_mb_at_batch_one_is_the_bytes_of_the_cache_tensors(bench, micro_bridge_world, monkeypatch, name):
    """Every generate call's returned cache is weighed independently; a batch of one must report exactly that."""
    calls = []
    for lm in (bench.source, bench.target):
        original = lm.model.generate

        def spy(*args, _original=original, **kwargs):
            output = _original(*args, **kwargs)
            cache = output.past_key_values
            calls.append((sum(t.numel() * t.element_size() for t in kv_cache_tensors(cache)), cache.get_seq_length()))
            return output

        monkeypatch.setattr(lm.model, "generate", spy)
    examples = examples_of(micro_bridge_world, 2)
    rows, _ = benchmark_baseline(bench, name, examples, batch_size=1, max_new_tokens=EVAL["max_new_tokens"])
    per_batch = 2 if name == "cascade" else 1  # the cascade generates twice: source, then target
    measured = calls[-2 * per_batch :]
    expected = [np.sum(measured[i : i + per_batch], axis=0).tolist() for i in range(0, len(measured), per_batch)]
    assert [[row["kv_cache_mb"] * MB, row["cache_positions"]] for row in rows] == expected  # MB = 2^20: exact in floats
    # in a batch each row counts its own positions only: together no more than the cache holds
    calls.clear()
    together = RUNNERS[name](bench, examples_of(micro_bridge_world, 4), EVAL["max_new_tokens"])
    assert 0 < sum(answer["kv_cache_bytes"] for answer in together) <= sum(cache_bytes for cache_bytes, _ in calls)
    assert all(answer["cache_positions"] <= sum(length for _, length in calls) for answer in together)


# ---------------------------------------------------------------- the summary
def interval_ok(interval):
    low, high = interval["ci95"]
    return low <= interval["mean"] + 1e-12 and interval["mean"] <= high + 1e-12


def test_the_summary_holds_intervals_comparisons_and_compression(benchmark, bench, micro_bridge_world):
    summary, rows = benchmark["summary"], benchmark["rows"]

    def mean(name, field):
        return float(np.mean([row[field] for row in rows[name]]))

    assert json.loads((benchmark["out_dir"] / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for name, baseline in summary["baselines"].items():
        assert baseline["n"] == 16 and baseline["peak_memory_kind"] == "cpu_rss_growth"
        for field in ("accuracy", "latency_s", "kv_cache_mb", "peak_memory_mb", "input_tokens", "output_tokens"):
            assert interval_ok(baseline[field]), (name, field)
        assert baseline["accuracy"]["mean"] == pytest.approx(mean(name, "correct"))
        assert baseline["kv_cache_mb"]["mean"] == pytest.approx(mean(name, "kv_cache_mb"))
        assert baseline["throughput_samples_per_s"] == pytest.approx(16 / sum(set(row["latency_s"] for row in rows[name])))
        batches = {row["batch"]: row["latency_s"] for row in rows[name]}  # a batch's latency, once per batch
        assert sorted(batches) == [0, 1, 2, 3]
        assert baseline["latency_s"] == json.loads(json.dumps(stats.bootstrap_mean_ci(list(batches.values()))))
        assert "f1" not in baseline  # GSM8K: accuracy only
    assert set(summary["comparisons"]) == {f"latent_vs_{name}" for name in BASELINES if name != "latent"}
    for key, comparison in summary["comparisons"].items():
        other = key.removeprefix("latent_vs_")
        assert interval_ok(comparison["accuracy_difference"]) and interval_ok(comparison["kv_cache_mb_saved"])
        assert comparison["accuracy_difference"]["mean"] == pytest.approx(mean("latent", "correct") - mean(other, "correct"))
        assert comparison["kv_cache_mb_saved"]["mean"] == pytest.approx(mean(other, "kv_cache_mb") - mean("latent", "kv_cache_mb"))
        assert comparison["latency_s_difference"]["mean"] == pytest.approx(mean("latent", "latency_s") - mean(other, "latency_s"))
        assert comparison["mcnemar_p"] == stats.mcnemar_exact([r["correct"] for r in rows["latent"]], [r["correct"] for r in rows[other]])
    compression = summary["compression"]
    prompt_tokens = [len(bench.target.tokenizer(e.prompt, add_special_tokens=False)["input_ids"]) for e in examples_of(micro_bridge_world, 16)]
    assert compression["mean_prompt_tokens"] == pytest.approx(np.mean(prompt_tokens))
    assert compression["ratio"] == pytest.approx(np.mean(prompt_tokens) / K) and compression["soft_tokens"] == K
    assert compression["kv_saved_mb_measured"] == pytest.approx(mean("target_alone", "kv_cache_mb") - mean("latent", "kv_cache_mb"))
    assert compression["kv_saved_mb_seed_estimate"] == pytest.approx(0.5 * (np.mean(prompt_tokens) - K))
    # the micro target caches 2 layers × (key, value) × 2 KV heads × head dim 6 × 4 bytes per token
    assert compression["target_kv_mb_per_token_measured"] == pytest.approx(2 * 2 * 2 * 6 * 4 / MB)
    assert "KV cache saved per request: measured" in benchmark["log"] and "seed estimate" in benchmark["log"]
    stamp = summary["provenance"]
    assert stamp["source_model"]["local_dir_sha256"] and len(stamp["translator"]["sha256"]) == 64 and stamp["device"] == "cpu"


def test_soft_plus_text_has_no_compression_ratio_and_no_seed_estimate():
    """The target reads the whole prompt besides the soft tokens: what was saved is only what was measured."""
    rows = {"target_alone": [{"kv_cache_mb": 2.0, "cache_positions": 100}], "latent": [{"kv_cache_mb": 2.5, "cache_positions": 124}]}
    plus_text = compression(rows, [100], 24, "soft_plus_text")
    assert plus_text["ratio"] is None and plus_text["kv_saved_mb_seed_estimate"] is None
    assert plus_text["kv_saved_mb_measured"] == pytest.approx(-0.5)
    soft_only = compression(rows, [100], 24)
    assert soft_only["ratio"] == pytest.approx(100 / 24) and soft_only["kv_saved_mb_seed_estimate"] == pytest.approx(0.5 * 76)


def test_a_subset_of_baselines_and_samples(micro_bridge_world, trained, tmp_path):
    summary = run_inference_benchmark(**benchmark_job(micro_bridge_world, trained, tmp_path, samples=5, baselines=["target_alone", "token_budget"], batch_size=2))
    assert summary["samples"] == 5 and list(summary["baselines"]) == ["target_alone", "token_budget"]
    assert summary["comparisons"] == {} and summary["compression"]["kv_saved_mb_measured"] is None
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 10


# ---------------------------------------------------------------- config
MICRO_CONFIG = yaml.safe_load(MICRO_BRIDGE.read_text())


def config_with(**inference) -> dict:
    config = copy.deepcopy(MICRO_CONFIG)
    config["bridge"]["inference"] = inference
    return config


def test_the_benchmark_defaults_to_the_first_run_and_every_baseline():
    config = validate_config(config_with())
    assert config["bridge"]["inference"] == {"baselines": list(BASELINES), "batch_size": 8, "run": None, "samples": None}
    assert inference_run(config["bridge"]) == "micro_cross"
    assert inference_run(validate_config(config_with(run="micro_same"))["bridge"]) == "micro_same"


@pytest.mark.parametrize(
    ("inference", "message"),
    [
        ({"run": "1a"}, "config key 'bridge.inference.run': '1a' is not a bridge run; configured: micro_cross, micro_same, micro_dit_hotpot"),
        ({"baselines": ["latent", "beam_search"]}, "config key 'bridge.inference.baselines[1]': 'beam_search' is not allowed; allowed: source_alone"),
        ({"samples": 0}, "config key 'bridge.inference.samples': 0 is less than the minimum of 1"),
        ({"batch": 4}, "unknown config key 'bridge.inference.batch'"),
    ],
)
def test_bad_benchmark_settings_name_the_key(inference, message):
    with pytest.raises(ConfigError) as error:
        validate_config(config_with(**inference))
    assert message in str(error.value)


@pytest.mark.workflow
def test_one_benchmark_is_a_target_of_its_own(tmp_path):
    """A reused run's benchmark plans the run that trained for it and nothing of the other runs; a bad run stops before any job."""
    target = "results/bridge/inference/micro_same/summary.json"
    jobs = planned_jobs(snakemake(tmp_path, MICRO_BRIDGE, "-n", target))
    assert jobs["benchmark_bridge_inference"] == 1 and jobs["train_bridge"] == 1  # micro_cross trains for micro_same
    assert jobs["eval_bridge_baseline"] == 2  # micro_cross's source and target on GSM8K, for its training
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MICRO_CONFIG, "bridge": {**MICRO_CONFIG["bridge"], "inference": {"run": "1a"}}}))
    result = snakemake(tmp_path, bad, "-n")
    assert result.returncode != 0 and "'bridge.inference.run': '1a' is not a bridge run" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- statistics
def test_a_constant_sample_has_a_zero_width_interval():
    interval = stats.bootstrap_mean_ci([0.7] * 50)
    assert interval["ci95"][0] == interval["ci95"][1] == pytest.approx(0.7)
    assert stats.paired_bootstrap_difference([1, 0, 1], [1, 0, 1]) == {"mean": 0.0, "ci95": [0.0, 0.0]}


def test_a_bernoulli_sample_brackets_its_probability_with_the_normal_width():
    draws = np.random.default_rng(1).random(4000) < 0.3
    interval = stats.bootstrap_mean_ci(draws)
    low, high = interval["ci95"]
    assert low < 0.3 < high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 4000), rel=0.1)


def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered = [
        low <= 0.3 <= high
        for low, high in (stats.bootstrap_mean_ci(rng.random(200) < 0.3, resamples=1000, seed=i)["ci95"] for i in range(300))
    ]
    assert 0.91 <= np.mean(covered) <= 0.98


def test_the_paired_bootstrap_keeps_pairs_together():
    """A constant shift between paired measurements is exact when pairs are kept, whatever the spread."""
    first = np.random.default_rng(3).normal(size=300) * 10
    interval = stats.paired_bootstrap_difference(first + 1.5, first)
    assert interval["ci95"] == pytest.approx([1.5, 1.5])
    assert interval["mean"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="differ in shape"):
        stats.paired_bootstrap_difference([1, 2], [1, 2, 3])


@pytest.mark.parametrize(
    ("only_first", "only_second", "both", "expected"),
    [
        (0, 0, 10, 1.0),  # no discordant pairs
        (0, 5, 3, 2 / 2**5),  # P(X <= 0 | n=5) doubled
        (1, 9, 0, 2 * (1 + 10) / 2**10),  # P(X <= 1 | n=10) doubled
        (4, 4, 2, 1.0),  # balanced: the doubled tail exceeds one
        (12, 3, 7, 2 * sum(comb(15, k) for k in range(4)) / 2**15),
    ],
)
def test_mcnemar_matches_the_hand_computed_binomial(only_first, only_second, both, expected):
    first = [True] * only_first + [False] * only_second + [True] * both + [False] * 4
    second = [False] * only_first + [True] * only_second + [True] * both + [False] * 4
    assert stats.mcnemar_exact(first, second) == pytest.approx(expected, rel=1e-12)
    assert stats.mcnemar_exact(second, first) == pytest.approx(expected, rel=1e-12)
