"""Zero-shot evaluation of one (model, mask) pair through lm-eval, written as a provenance-stamped metrics.json."""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import lm_eval
import numpy as np
from lm_eval.utils import hash_string

from ablation.io import atomic_write_json, atomic_write_text
from ablation.layout import METRICS_FILE, SAMPLES_FILE
from ablation.prefill.lm_eval_model import MaskedHFLM
from ablation.provenance import provenance
from ablation.prefill.study import check_mask_mode, resolve_tasks
from ablation.prefill.task_sets import task_manager, validation_task_spec

log = logging.getLogger(__name__)

# How the original study tokenized (ablation.prefill.lm_eval_model): the `original` set is scored that way
ORIGINAL_ENCODING = {"add_bos_token": False, "pair_encoding": "original"}


def _metric(task_results: dict, name: str) -> float | None:
    """A metric of lm-eval's results; None where it is missing, NaN or "N/A" (a stderr of one sample)."""
    value = task_results.get(f"{name},none")
    if value is None or value == "N/A" or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def add_per_token_accuracy(results: dict, tasks: tuple[str, ...], continuation_tokens: Mapping) -> None:
    """The original study's metric on every logged sample of ``tasks``, in place.

    Each sample gets ``continuation_tokens`` (per choice, as ``MaskedHFLM`` scored them) and
    ``acc_per_token``: 1.0 when the choice with the highest mean log-probability per continuation
    token is the gold one. The tasks' ``doc_to_target`` must give the gold index, as the
    ``original`` set's does.
    """
    for task in tasks:
        for sample in results["samples"][task]:
            counts = [continuation_tokens[tuple(arguments)] for arguments in sample["arguments"]]
            means = [response[0][0] / count for response, count in zip(sample["resps"], counts)]
            sample["continuation_tokens"] = counts
            sample["acc_per_token"] = float(int(np.argmax(means)) == int(sample["target"]))


def _sample_mean(values: list[float]) -> tuple[float, float | None]:
    """Mean and its standard error, as lm-eval's ``mean`` aggregation and ``mean_stderr`` give them."""
    stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return statistics.fmean(values), stderr


def summarise_results(results: dict, tasks: tuple[str, ...]) -> dict:
    """Per-task acc/acc_norm with stderr, n and chance, and their macro averages.

    Chance is 1 / mean number of choices. Tasks that define no acc_norm (winogrande, whose
    choices share one continuation) count with their acc in the acc_norm macro. Where every
    sample carries ``acc_per_token`` (``add_per_token_accuracy``), it is summarised beside them.
    """
    per_task = {}
    for task in tasks:
        task_results = results["results"][task]
        samples = results["samples"][task]
        mean_choices = sum(len(sample["arguments"]) for sample in samples) / len(samples)
        acc_norm = _metric(task_results, "acc_norm")
        per_task[task] = {
            "acc": _metric(task_results, "acc"),
            "acc_stderr": _metric(task_results, "acc_stderr"),
            "acc_norm": acc_norm,
            "acc_norm_stderr": _metric(task_results, "acc_norm_stderr"),
            "n": len(samples),
            "chance": 1.0 / mean_choices,
        }
        if all("acc_per_token" in sample for sample in samples):
            mean, stderr = _sample_mean([sample["acc_per_token"] for sample in samples])
            per_task[task].update(acc_per_token=mean, acc_per_token_stderr=stderr)

    def macro(values):
        return sum(values) / len(values)

    summary = {
        "tasks": per_task,
        "macro_acc": macro([m["acc"] for m in per_task.values()]),
        "macro_acc_norm": macro([m["acc_norm"] if m["acc_norm"] is not None else m["acc"] for m in per_task.values()]),
        "chance_macro": macro([m["chance"] for m in per_task.values()]),
    }
    if all("acc_per_token" in m for m in per_task.values()):
        summary["macro_acc_per_token"] = macro([m["acc_per_token"] for m in per_task.values()])
    return summary


def samples_jsonl(results: dict, tasks: tuple[str, ...]) -> str:
    """lm-eval's per-sample log of every task, one JSON object a line, for audits."""
    lines = [
        json.dumps({"task": task, **sample}, sort_keys=True, default=str)
        for task in tasks
        for sample in results["samples"][task]
    ]
    return "\n".join(lines) + "\n"


def lm_eval_record(results: dict, tasks: tuple[str, ...]) -> dict:
    """lm-eval's own reproducibility record of a run, kept beside our summary.

    ``simple_evaluate`` returns task versions, n-shot, lm-eval's git hash and its environment
    summary; the task hashes are what lm-eval's results files carry: per task, the hash of its
    samples' document, prompt and target hashes, computed as lm-eval's EvaluationTracker does.
    """
    return {
        "task_hashes": {
            task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in results["samples"][task]))
            for task in tasks
        },
        "task_versions": {task: results["versions"].get(task) for task in tasks},
        "n_shot": {task: results["n-shot"].get(task) for task in tasks},
        **{key: results.get(key) for key in ("git_hash", "lm_eval_version", "transformers_version", "upper_git_hash", "date", "pretty_env_info")},
    }


def evaluate_model(
    *,
    model_id: str,
    mask: str,
    output_dir: str | Path,
    config: dict,
    task_set: str,
    tasks: list[str] | None = None,
    tasks_dir: str | Path | None = None,
    revision: str | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    eval_weights: str = "dequantized",
    logprob_dtype: str = "float32",
    seed: int = 1234,
) -> dict:
    """Evaluate ``model_id`` under ``mask`` and write ``metrics.json`` and ``samples.jsonl`` to ``output_dir``.

    The ``original`` task set is tokenized as the original study did (``ORIGINAL_ENCODING``) and
    also gets its metric, ``acc_per_token``. ``logprob_dtype`` is the precision log-probabilities are
    scored in (``ablation.prefill.scoring``; ``model``: the original's). ``metrics.json`` is written
    last and atomically: it exists only for a finished evaluation.
    """
    started = time.perf_counter()
    check_mask_mode(mask)
    task_names = resolve_tasks(task_set, tasks)
    manager = task_manager(tasks_dir, task_names)
    original = task_set == "original"
    model = MaskedHFLM(
        model_id,
        mask=mask,
        revision=revision,
        dtype=dtype,
        attn_implementation=attn_implementation,
        device=device,
        eval_weights=eval_weights,
        batch_size=batch_size,
        logprob_dtype=logprob_dtype,
        **(ORIGINAL_ENCODING if original else {}),
    )
    log.info("evaluating %s under %s on %s (limit %s)", model_id, mask, ", ".join(task_names), limit)
    scoring_started = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=model,
        tasks=[validation_task_spec(manager, task) for task in task_names],
        task_manager=manager,
        num_fewshot=0,
        limit=limit,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    scoring_seconds = time.perf_counter() - scoring_started
    if original:
        add_per_token_accuracy(results, task_names, model.continuation_tokens)
    requests = sum(len(sample["arguments"]) for task in task_names for sample in results["samples"][task])

    output_dir = Path(output_dir)
    atomic_write_text(output_dir / SAMPLES_FILE, samples_jsonl(results, task_names))
    metrics = {
        **summarise_results(results, task_names),
        "task_set": task_set,
        "limit": limit,
        "scoring": model.scoring,
        "logprob_dtype": model.logprob_dtype,
        "requests": requests,
        "requests_per_second": requests / scoring_seconds,
        "provenance": provenance(
            model_id=model_id,
            revision=revision,
            mask=mask,
            config=config,
            seed=seed,
            wall_seconds=time.perf_counter() - started,
            weights=model.model.weights_provenance,
            tokenization={"bos": model.prepends_bos, "pair_encoding": model.pair_encoding},
        ),
    }
    metrics["provenance"]["lm_eval"] = lm_eval_record(results, task_names)
    atomic_write_json(output_dir / METRICS_FILE, metrics)
    log.info("macro acc %.4f (chance %.4f)", metrics["macro_acc"], metrics["chance_macro"])
    return metrics
