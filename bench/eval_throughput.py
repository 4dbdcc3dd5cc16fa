"""Zero-shot scoring throughput: the original study's scorer shape against ours, in one process.

(a) original: batch 1, one full forward per (prompt, choice) — the original study's scorer shape;
(b) ours, causal: padded batches, each prompt prefilled once and its KV cache shared by its choices;
(c) ours, prefill_bidir: the same with the prompt prefilled bidirectionally.
All three run through lm-eval on the same tasks, so their accuracies are computed identically;
(a) and (b) must agree. The headline ratios time the scorer alone; the same ratios with lm-eval's
shared tokenisation included are printed beside them. On a CUDA GPU, (b) and (c) are also timed in bf16.

Usage (after `snakemake --cores 2` built the tiny world):
    .venv/bin/python bench/eval_throughput.py [--world results/world] [--limit 200]
The last output line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import lm_eval  # noqa: E402
import torch  # noqa: E402

from ablation.prefill.lm_eval_model import MaskedHFLM  # noqa: E402
from ablation.models import load_causal_lm, load_tokenizer  # noqa: E402
from ablation.prefill.original.scorer import OriginalScorerLM  # noqa: E402
from ablation.prefill.task_sets import task_manager  # noqa: E402
from ablation.prefill.study import TINY_TASKS  # noqa: E402


def timed_run(model, world: Path, limit: int | None) -> dict:
    """Accuracy per task and requests/s of one lm-eval run.

    Two clocks: ``scorer`` times ``_loglikelihood_tokens`` alone (the part whose shape differs
    between the three runs); ``with_tokenization`` adds lm-eval's own request tokenisation,
    identical code in all three, so its ratios are diluted by a shared fixed cost.
    """
    seconds = {"scorer": 0.0, "with_tokenization": 0.0}

    def clocked(function, clock: str):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            answers = function(*args, **kwargs)
            seconds[clock] += time.perf_counter() - started
            return answers

        return wrapper

    model.loglikelihood = clocked(model.loglikelihood, "with_tokenization")
    model._loglikelihood_tokens = clocked(model._loglikelihood_tokens, "scorer")
    results = lm_eval.simple_evaluate(
        model=model, tasks=list(TINY_TASKS), task_manager=task_manager(world / "tasks"), limit=limit, log_samples=True
    )
    requests = sum(len(sample["arguments"]) for task in TINY_TASKS for sample in results["samples"][task])
    accuracy = {task: results["results"][task]["acc,none"] for task in TINY_TASKS}
    return {
        "requests": requests,
        "seconds": seconds["scorer"],
        "requests_per_s": requests / seconds["scorer"],
        "seconds_with_tokenization": seconds["with_tokenization"],
        "requests_per_s_with_tokenization": requests / seconds["with_tokenization"],
        "acc": accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("results/world"), help="tiny world built by the workflow")
    parser.add_argument("--limit", type=int, default=None, help="examples per task (default: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="continuations per forward pass (config.yaml's eval.batch_size)")
    arguments = parser.parse_args()
    model_dir = arguments.world / "base_model"
    if not model_dir.is_dir():
        raise SystemExit(f"{model_dir} not found: build the tiny world first with `snakemake --cores 2`")

    model = load_causal_lm(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    timed_run(MaskedHFLM(model, tokenizer=tokenizer), arguments.world, 2)  # warm-up: first calls allocate
    runs = {
        "original": timed_run(OriginalScorerLM(model, tokenizer=tokenizer), arguments.world, arguments.limit),
        "causal": timed_run(
            MaskedHFLM(model, tokenizer=tokenizer, mask="causal", batch_size=arguments.batch_size),
            arguments.world,
            arguments.limit,
        ),
        "prefill_bidir": timed_run(
            MaskedHFLM(model, tokenizer=tokenizer, mask="prefill_bidir", batch_size=arguments.batch_size),
            arguments.world,
            arguments.limit,
        ),
    }
    if torch.cuda.is_available():
        gpu_model = load_causal_lm(str(model_dir), dtype="bfloat16", device="cuda")
        for mask in ("causal", "prefill_bidir"):
            lm = MaskedHFLM(gpu_model, tokenizer=tokenizer, mask=mask, batch_size=arguments.batch_size)
            runs[f"{mask}_cuda_bf16"] = timed_run(lm, arguments.world, arguments.limit)

    def speedup(faster: str, slower: str, key: str = "requests_per_s") -> float:
        return runs[faster][key] / runs[slower][key]

    header = f"{'run':<24}{'requests':>10}{'scorer s':>10}{'req/s':>10}{'vs original':>13}{'+tokenize s':>13}{'vs original':>13}"
    print(header)
    for name, run in runs.items():
        ratio = speedup(name, "original")
        ratio_tokenized = speedup(name, "original", "requests_per_s_with_tokenization")
        print(
            f"{name:<24}{run['requests']:>10}{run['seconds']:>10.2f}{run['requests_per_s']:>10.1f}{ratio:>12.2f}x"
            f"{run['seconds_with_tokenization']:>13.2f}{ratio_tokenized:>12.2f}x"
        )

    summary = {
        "prefill_vs_original_speedup": speedup("prefill_bidir", "original"),
        "causal_vs_original_speedup": speedup("causal", "original"),
        "prefill_vs_causal_speedup": speedup("prefill_bidir", "causal"),
        "prefill_vs_original_speedup_with_tokenization": speedup(
            "prefill_bidir", "original", "requests_per_s_with_tokenization"
        ),
        "original_causal_acc_match": runs["original"]["acc"] == runs["causal"]["acc"],
        "threads": torch.get_num_threads(),
        "runs": runs,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
