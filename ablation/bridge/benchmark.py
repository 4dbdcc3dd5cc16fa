"""Seed 004's Ablation 4: an inference benchmark of one trained bridge against four baselines, no training.

For a run's translator and its eval set (the whole eval split unless ``samples`` says fewer), five
ways to answer every question, each timed and measured per sample:

- ``source_alone``: the source reads the prompt and answers;
- ``target_alone``: the target reads the prompt and answers;
- ``latent`` (ours): exactly ``Bridge.generate``: the source reads the prompt, the translator writes
  K soft tokens, the target reads them and the lead text (``batches.lead_text``) and answers;
- ``token_budget``: the target reads BOS, the *last* K of the prompt's own tokens and the answer
  request (``prompts.SOFT_SUFFIX``): the soft tokens' budget spent on text. The last tokens are
  kept because the prompt ends with the question and its cue (a few-shot prefix comes first),
  as the source's own reading keeps the end (``batches.tokenize_source``);
- ``cascade``: the source answers in text; the target reads the prompt, that draft and a request
  to check it (``CASCADE_TEMPLATE``) and answers.

What is measured, per sample (``samples.jsonl``):

- ``kv_cache_mb``: the KV cache held when generation ends, from the key and value tensors
  ``generate`` returns (``generation.measure_cache``: a row's non-padding positions, so at batch
  size 1 exactly the cache's bytes); MB = 2^20 bytes. ``latent`` counts the target's cache (the
  source's reading builds none); ``cascade`` the source's plus the target's (built one after the
  other; both are in the row).
- ``latency_s``: wall time of the sample's batch from text prompts to answer texts, tokenisation
  included, CUDA synchronised; every baseline first answers its first batch once untimed (warm-up).
  It and the peak memory are the batch's (``batch``): their means and intervals, and latency's paired
  difference, count each batch once, not once per question in it.
- ``peak_memory_mb``: on CUDA the batch's peak allocated memory (weights included,
  ``cuda_max_allocated``); on CPU how far the process's resident set grew above where it stood
  (``cpu_rss_growth``: the high-water mark is reset through /proc/self/clear_refs, so Linux only).
- quality (``correct``; HotpotQA adds ``em`` and ``f1``), input and output token counts.

Every baseline batches (``bridge.inference.batch_size``) and reports its throughput. Baselines
decode plain greedy as the source- and target-alone evaluations do (``baselines.BASELINE_HYGIENE``);
``latent`` under the run's own hygiene, as the run's evaluations did. ``summary.json`` holds means
with 95 % bootstrap intervals per baseline, ``latent`` against every other baseline (paired
bootstrap, exact McNemar), and the compression accounting: mean prompt tokens / K from the
tokenised prompts, and the KV cache saved per request measured beside the seed's 0.5 MB per token.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ablation.bridge.answers import score
from ablation.bridge.baselines import BASELINE_HYGIENE
from ablation.bridge.data import EvalExample, eval_examples, load_rows
from ablation.bridge.frozen import FrozenLM, load_frozen
from ablation.bridge.generation import Generation, generate_from_embeds, generate_from_text, opening_ids
from ablation.bridge.prompts import SOFT_SUFFIX
from ablation.stats import CONFIDENCE, RESAMPLES, SEED, bootstrap_mean_ci, mcnemar_exact, paired_bootstrap_difference
from ablation.bridge.model import Bridge
from ablation.io import atomic_write_json, atomic_write_jsonl, file_sha256
from ablation.provenance import model_identity, provenance
from ablation.layout import SAMPLES_FILE, SUMMARY_FILE

log = logging.getLogger(__name__)

BASELINES = ("source_alone", "target_alone", "latent", "token_budget", "cascade")
TARGET_ONLY = ("target_alone", "latent", "token_budget")  # baselines whose cache is the target's alone
MB = 2**20
SEED_KV_MB_PER_TOKEN = 0.5  # seed 004 priced every prompt token at 0.5 MB of KV cache
CASCADE_TEMPLATE = "{prompt}\n\nA draft answer from another model:\n{draft}\n\nCheck the draft and correct it if needed.{request}"


@dataclass
class Bench:
    """What every baseline reads from: the frozen pair, the bridge with its trained translator."""

    source: FrozenLM
    target: FrozenLM
    bridge: Bridge
    translator: torch.nn.Module
    dataset: str
    soft_tokens: int


# ---------------------------------------------------------------- inputs
def token_budget_ids(tokenizer, prompt: str, dataset: str, budget: int) -> tuple[list[int], int]:
    """``[BOS][last budget prompt tokens][answer request]`` and how many prompt tokens it kept."""
    opening = opening_ids(tokenizer)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    kept = prompt_ids[max(0, len(prompt_ids) - budget) :]
    request = tokenizer(SOFT_SUFFIX[dataset], add_special_tokens=False)["input_ids"]
    return opening + kept + request, len(kept)


def cascade_prompt(dataset: str, prompt: str, draft: str) -> str:
    """What the target reads in the cascade: the prompt, the source's draft, and the answer request."""
    return CASCADE_TEMPLATE.format(prompt=prompt, draft=draft.strip(), request=SOFT_SUFFIX[dataset])


def left_padded_embeddings(lm: FrozenLM, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows embedded and left padded with zeros: [B, L, D] embeddings and [B, L] attention."""
    width = max(len(row) for row in rows)
    device = lm.model.device
    inputs = torch.zeros(len(rows), width, lm.width, dtype=lm.model.dtype, device=device)
    attention = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    with torch.no_grad():
        for b, row in enumerate(rows):
            inputs[b, width - len(row) :] = lm.embeddings(torch.tensor(row, device=device)).to(lm.model.dtype)
            attention[b, width - len(row) :] = 1
    return inputs, attention


# ---------------------------------------------------------------- the five baselines
def _answer(generation: Generation, **extra) -> dict:
    return {
        "text": generation.text, "input_tokens": generation.input_tokens, "output_tokens": generation.output_tokens,
        "kv_cache_bytes": generation.kv_cache_bytes, "cache_positions": generation.cache_positions, **extra,
    }  # fmt: skip


def _alone(lm: FrozenLM, bench: Bench, prompts: list[str], max_new_tokens: int) -> list[Generation]:
    return generate_from_text(
        lm.model, lm.tokenizer, prompts, dataset=bench.dataset, hygiene=BASELINE_HYGIENE,
        max_new_tokens=max_new_tokens, batch_size=len(prompts), measure_cache=True,
    )  # fmt: skip


def source_alone(bench: Bench, examples: list[EvalExample], max_new_tokens: int) -> list[dict]:
    return [_answer(g) for g in _alone(bench.source, bench, [e.prompt for e in examples], max_new_tokens)]


def target_alone(bench: Bench, examples: list[EvalExample], max_new_tokens: int) -> list[dict]:
    return [_answer(g) for g in _alone(bench.target, bench, [e.prompt for e in examples], max_new_tokens)]


def latent(bench: Bench, examples: list[EvalExample], max_new_tokens: int) -> list[dict]:
    generations = bench.bridge.generate(bench.translator, examples, batch_size=len(examples), max_new_tokens=max_new_tokens, measure_cache=True)
    return [_answer(g) for g in generations]


def token_budget(bench: Bench, examples: list[EvalExample], max_new_tokens: int) -> list[dict]:
    rows = [token_budget_ids(bench.target.tokenizer, e.prompt, bench.dataset, bench.soft_tokens) for e in examples]
    inputs, attention = left_padded_embeddings(bench.target, [ids for ids, _ in rows])
    generations = generate_from_embeds(
        bench.target.model, bench.target.tokenizer, inputs, attention, dataset=bench.dataset,
        hygiene=BASELINE_HYGIENE, max_new_tokens=max_new_tokens, measure_cache=True,
    )  # fmt: skip
    return [_answer(g, prompt_tokens_kept=kept) for g, (_, kept) in zip(generations, rows)]


def cascade(bench: Bench, examples: list[EvalExample], max_new_tokens: int) -> list[dict]:
    drafts = _alone(bench.source, bench, [e.prompt for e in examples], max_new_tokens)
    prompts = [cascade_prompt(bench.dataset, e.prompt, d.text) for e, d in zip(examples, drafts)]
    answers = _alone(bench.target, bench, prompts, max_new_tokens)
    return [
        {
            **_answer(answer),
            "kv_cache_bytes": draft.kv_cache_bytes + answer.kv_cache_bytes,
            "cache_positions": draft.cache_positions + answer.cache_positions,
            "draft": draft.text, "source_input_tokens": draft.input_tokens, "source_output_tokens": draft.output_tokens,
            "kv_cache_mb_source": draft.kv_cache_bytes / MB, "kv_cache_mb_target": answer.kv_cache_bytes / MB,
        }  # fmt: skip
        for draft, answer in zip(drafts, answers)
    ]


RUNNERS = {"source_alone": source_alone, "target_alone": target_alone, "latent": latent, "token_budget": token_budget, "cascade": cascade}


# ---------------------------------------------------------------- measurement
def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (VmRSS: resident now, VmHWM: its high-water mark)."""
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE).group(1))


def peak_memory_kind(device: torch.device) -> str:
    return "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_growth"


def measured(device: torch.device, work):
    """``work()``'s result, its wall seconds and its peak memory in MB (see ``peak_memory_kind``)."""
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    resident_kb = 0 if on_cuda else _status_kb("VmRSS")
    started = time.perf_counter()
    result = work()
    if on_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    # the kernel folds pages in and out of its high-water mark lazily: a growth is never below zero
    peak_mb = torch.cuda.max_memory_allocated(device) / MB if on_cuda else max(0, _status_kb("VmHWM") - resident_kb) * 1024 / MB
    return result, seconds, peak_mb


def benchmark_baseline(bench: Bench, name: str, examples: list[EvalExample], *, batch_size: int, max_new_tokens: int) -> tuple[list[dict], float]:
    """Per-sample rows of baseline ``name`` over ``examples``, and the seconds its batches took."""
    runner, device = RUNNERS[name], bench.target.model.device
    runner(bench, examples[:batch_size], max_new_tokens)  # kernels, allocator and lazy init at full size, untimed
    rows, wall = [], 0.0
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        answers, seconds, peak_mb = measured(device, lambda: runner(bench, batch, max_new_tokens))  # noqa: B023 - called at once
        wall += seconds
        for example, answer in zip(batch, answers):
            kv_bytes = answer.pop("kv_cache_bytes")
            rows.append({
                "baseline": name, "index": example.index, "gold": example.gold, **score(bench.dataset, answer["text"], example.gold),
                **answer, "kv_cache_mb": kv_bytes / MB, "latency_s": seconds, "batch": start // batch_size, "batch_size": len(batch),
                "peak_memory_mb": peak_mb, "peak_memory_kind": peak_memory_kind(device),
            })  # fmt: skip
    return rows, wall


# ---------------------------------------------------------------- summary
BATCH_FIELDS = ("latency_s", "peak_memory_mb")  # measured per batch, repeated on each of its rows


def per_batch(rows: list[dict], field: str) -> dict[int, float]:
    """A per-batch measurement once per batch, by batch number."""
    return {row["batch"]: row[field] for row in rows}


def baseline_summary(rows: list[dict], wall_seconds: float, dataset: str) -> dict:
    """Means with 95 % bootstrap intervals over the questions, and throughput."""
    summary = {"n": len(rows), "accuracy": bootstrap_mean_ci([row["correct"] for row in rows])}
    if dataset == "hotpotqa":
        summary["f1"] = bootstrap_mean_ci([row["f1"] for row in rows])
    for field in ("kv_cache_mb", "input_tokens", "output_tokens"):
        summary[field] = bootstrap_mean_ci([row[field] for row in rows])
    for field in BATCH_FIELDS:
        summary[field] = bootstrap_mean_ci(list(per_batch(rows, field).values()))
    summary["peak_memory_kind"] = rows[0]["peak_memory_kind"]
    summary["wall_seconds"] = wall_seconds
    summary["throughput_samples_per_s"] = len(rows) / wall_seconds
    return summary


def comparisons(by_baseline: dict[str, list[dict]], dataset: str) -> dict:
    """Latent against every other baseline on the same questions; positive ``kv_cache_mb_saved``: latent holds less."""
    if "latent" not in by_baseline:
        return {}
    ours = by_baseline["latent"]
    result = {}
    for name, rows in by_baseline.items():
        if name == "latent":
            continue
        if [row["index"] for row in rows] != [row["index"] for row in ours]:
            raise ValueError(f"baseline {name!r} answered other questions than latent")
        pair = {
            "accuracy_difference": paired_bootstrap_difference([r["correct"] for r in ours], [r["correct"] for r in rows]),
            "mcnemar_p": mcnemar_exact([r["correct"] for r in ours], [r["correct"] for r in rows]),
            "kv_cache_mb_saved": paired_bootstrap_difference([r["kv_cache_mb"] for r in rows], [r["kv_cache_mb"] for r in ours]),
            "latency_s_difference": paired_bootstrap_difference(list(per_batch(ours, "latency_s").values()),
                                                                list(per_batch(rows, "latency_s").values())),  # fmt: skip
        }
        if dataset == "hotpotqa":
            pair["f1_difference"] = paired_bootstrap_difference([r["f1"] for r in ours], [r["f1"] for r in rows])
        result[f"latent_vs_{name}"] = pair
    return result


def compression(by_baseline: dict[str, list[dict]], prompt_tokens: list[int], soft_tokens: int, prompt_mode: str = "soft_only") -> dict:
    """Prompt tokens per soft token, and the KV cache saved per request: measured, and as the seed priced it.
    Under ``soft_plus_text`` the target reads the whole prompt besides the soft tokens: no ratio and no
    seed estimate, since nothing was compressed; the measured saving says what it cost instead."""
    mean_prompt = sum(prompt_tokens) / len(prompt_tokens)
    compressed = prompt_mode == "soft_only"

    def mean_kv(name):
        return sum(row["kv_cache_mb"] for row in by_baseline[name]) / len(by_baseline[name])

    measured_saving = mean_kv("target_alone") - mean_kv("latent") if {"target_alone", "latent"} <= set(by_baseline) else None
    target_rows = next((by_baseline[name] for name in TARGET_ONLY if name in by_baseline), None)
    per_token = None if target_rows is None else sum(r["kv_cache_mb"] / r["cache_positions"] for r in target_rows) / len(target_rows)
    return {
        "mean_prompt_tokens": mean_prompt,
        "soft_tokens": soft_tokens,
        "prompt_mode": prompt_mode,
        "ratio": mean_prompt / soft_tokens if compressed else None,
        "kv_saved_mb_measured": measured_saving,
        "kv_saved_mb_seed_estimate": SEED_KV_MB_PER_TOKEN * (mean_prompt - soft_tokens) if compressed else None,
        "target_kv_mb_per_token_measured": per_token,
        "seed_kv_mb_per_token": SEED_KV_MB_PER_TOKEN,
    }


def _log_summary(summary: dict) -> None:
    for name, b in summary["baselines"].items():
        log.info("%-13s accuracy %.3f [%.3f, %.3f] | latency %.3f s | KV %.3f MB | peak %.1f MB (%s) | %.2f samples/s",
                 name, b["accuracy"]["mean"], *b["accuracy"]["ci95"], b["latency_s"]["mean"], b["kv_cache_mb"]["mean"],
                 b["peak_memory_mb"]["mean"], b["peak_memory_kind"], b["throughput_samples_per_s"])  # fmt: skip
    for name, c in summary["comparisons"].items():
        log.info("%s: accuracy difference %+.3f [%+.3f, %+.3f], McNemar p %.4g, KV saved %.3f MB",
                 name, c["accuracy_difference"]["mean"], *c["accuracy_difference"]["ci95"], c["mcnemar_p"], c["kv_cache_mb_saved"]["mean"])  # fmt: skip
    c = summary["compression"]
    measured_saving = "n/a (needs target_alone and latent)" if c["kv_saved_mb_measured"] is None else f"{c['kv_saved_mb_measured']:.4f} MB"
    if c["ratio"] is None:
        log.info("no compression: %s, the target read the %.1f prompt tokens besides %d soft tokens; KV cache saved per request: measured %s",
                 c["prompt_mode"], c["mean_prompt_tokens"], c["soft_tokens"], measured_saving)  # fmt: skip
    else:
        log.info("compression: %.1f prompt tokens / %d soft tokens = %.2fx", c["mean_prompt_tokens"], c["soft_tokens"], c["ratio"])
        log.info("KV cache saved per request: measured %s; seed estimate %.4f MB (%.1f MB x (%.1f - %d) tokens)",
                 measured_saving, c["kv_saved_mb_seed_estimate"], SEED_KV_MB_PER_TOKEN, c["mean_prompt_tokens"], c["soft_tokens"])  # fmt: skip
    if c["target_kv_mb_per_token_measured"] is not None:
        log.info("target KV cache per token: measured %.6f MB, seed %.1f MB", c["target_kv_mb_per_token_measured"], SEED_KV_MB_PER_TOKEN)


# ---------------------------------------------------------------- the job
def load_bench(translator_path: str | Path, models: dict[str, dict], device: str) -> Bench:
    """The frozen pair a translator was trained between, and the translator in eval mode."""
    saved = torch.load(translator_path, map_location="cpu", weights_only=True)
    s = saved["settings"]
    frozen = {
        role: load_frozen(s[role], models[s[role]]["id"], models[s[role]]["revision"], dtype=models[s[role]]["dtype"], device=device)
        for role in ("source", "target")
    }  # fmt: skip
    widths = (frozen["source"].width, frozen["target"].width)
    if widths != (saved["source_dim"], saved["target_dim"]):
        raise ValueError(f"{translator_path} maps width {saved['source_dim']} to {saved['target_dim']}; "
                         f"the configured {s['source']} and {s['target']} have widths {widths[0]} and {widths[1]}")  # fmt: skip
    bridge = Bridge(frozen["source"], frozen["target"], s, s["dataset"])
    bridge.translator.load_state_dict(saved["state_dict"])
    bridge.translator.eval()
    return Bench(frozen["source"], frozen["target"], bridge, bridge.translator, s["dataset"], bridge.translator.soft_tokens)  # K, -1 resolved


def run_inference_benchmark(
    *,
    run: str,
    trained_run: str,
    translator_path: str | Path,
    models: dict[str, dict],
    dataset_source: dict,
    embedded_data_dir: str | Path | None,
    eval_settings: dict,
    inference: dict,
    out_dir: str | Path,
    config: dict,
    device: str,
) -> dict:
    """Benchmark ``inference["baselines"]`` for ``run`` (its translator trained by ``trained_run``); write samples, then the summary."""
    started = time.perf_counter()
    bench = load_bench(translator_path, models, device)
    dataset = bench.dataset
    train_rows = load_rows(dataset, dataset_source, dataset_source["train_split"], embedded_data_dir)
    eval_rows = load_rows(dataset, dataset_source, dataset_source["eval_split"], embedded_data_dir)
    samples = inference["samples"] or len(eval_rows)
    if samples > len(eval_rows):
        log.warning("bridge.inference.samples %d exceeds the eval split's %d rows; benchmarking all of them", samples, len(eval_rows))
    # the benchmark's last batch may be short: any non-empty eval set will do (batch_size 1 for the check)
    examples = eval_examples(dataset, eval_rows, train_rows, {**eval_settings, "samples": samples, "batch_size": 1}, dataset_source)
    by_baseline, walls = {}, {}
    for name in inference["baselines"]:
        log.info("benchmarking %s on %d %s questions, batches of %d", name, len(examples), dataset, inference["batch_size"])
        by_baseline[name], walls[name] = benchmark_baseline(
            bench, name, examples, batch_size=inference["batch_size"], max_new_tokens=eval_settings["max_new_tokens"]
        )
    atomic_write_jsonl(Path(out_dir) / SAMPLES_FILE, [row for rows in by_baseline.values() for row in rows])
    prompt_tokens = [len(bench.target.tokenizer(e.prompt, add_special_tokens=False)["input_ids"]) for e in examples]
    stamp = provenance(
        model_id=bench.target.model_id, revision=bench.target.revision, mask=None, config=config,
        seed=bench.bridge.settings["seed"], wall_seconds=time.perf_counter() - started,
    )  # fmt: skip
    stamp["source_model"] = model_identity(bench.source.model_id, bench.source.revision)
    stamp["translator"] = {"path": str(translator_path), "sha256": file_sha256(Path(translator_path))}
    stamp["device"] = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu"
    summary = {
        "run": run, "trained_run": trained_run, "dataset": dataset, "samples": len(examples), "soft_tokens": bench.soft_tokens,
        "batch_size": inference["batch_size"], "max_new_tokens": eval_settings["max_new_tokens"],
        "baselines": {name: baseline_summary(rows, walls[name], dataset) for name, rows in by_baseline.items()},
        "comparisons": comparisons(by_baseline, dataset),
        "compression": compression(by_baseline, prompt_tokens, bench.soft_tokens, bench.bridge.settings["prompt_mode"]),
        "statistics": {"interval": "percentile bootstrap over questions", "paired": "paired bootstrap of the mean difference",
                       "mcnemar": "exact two-sided binomial on discordant pairs", "confidence": CONFIDENCE,
                       "resamples": RESAMPLES, "seed": SEED},
        "provenance": stamp,
    }  # fmt: skip
    _log_summary(summary)
    atomic_write_json(Path(out_dir) / SUMMARY_FILE, summary)
    return summary
