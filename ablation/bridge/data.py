"""The bridge's datasets: GSM8K- and HotpotQA-shaped rows from the hub or the tiny world, checked,
and the fixed evaluation set every run and baseline shares.

Hub data goes through ``datasets.load_dataset`` (cached by ``prefetch`` on the submit host); the
tiny world's rows are JSONL files in the same field shapes, read through the same loader.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ablation.bridge.answers import extract_gsm8k_answer, normalize_answer, score_extracted
from ablation.bridge.prompts import check_dataset, eval_prompt, sample_shots

REQUIRED_FIELDS = {"gsm8k": ("question", "answer"), "hotpotqa": ("question", "answer", "context")}


@dataclass(frozen=True)
class EvalExample:
    """One evaluation question: what every model is shown and what counts as right."""

    index: int
    question: str
    prompt: str  # the evaluation prompt (few-shot prefix included), as the source and the text target read it
    gold_text: str  # the gold solution
    gold: str  # the gold answer scoring compares with


def load_rows(dataset: str, source: dict, split: str, embedded_dir: str | Path | None = None) -> list[dict]:
    """Rows of ``split``; ``source`` is the config's ``bridge.datasets.<dataset>`` entry."""
    from datasets import load_dataset

    check_dataset(dataset)
    key = f"bridge.datasets.{dataset}"
    if source["path"] == "embedded":
        if embedded_dir is None:
            raise ValueError(f"config key '{key}.path': 'embedded' needs the tiny world's bridge data directory")
        data_file = Path(embedded_dir) / dataset / f"{split}.jsonl"
        if not data_file.is_file():
            raise FileNotFoundError(f"config key '{key}': no split {split!r} in the tiny world ({data_file} is missing)")
        loaded = load_dataset("json", data_files=str(data_file), split="train")
    elif Path(source["path"]).is_dir():
        data_file = Path(source["path"]) / f"{split}.jsonl"
        if not data_file.is_file():
            raise FileNotFoundError(f"config key '{key}.path': {data_file} is missing")
        loaded = load_dataset("json", data_files=str(data_file), split="train")
    else:
        loaded = load_dataset(source["path"], source["name"], revision=source["revision"], split=split)
    missing = [field for field in REQUIRED_FIELDS[dataset] if field not in loaded.column_names]
    if missing:
        raise ValueError(
            f"config key '{key}': split {split!r} lacks the field(s) {', '.join(missing)} a {dataset} task needs; "
            f"it has {', '.join(loaded.column_names)}"
        )
    if len(loaded) == 0:
        raise ValueError(f"config key '{key}': split {split!r} is empty")
    return [dict(row) for row in loaded]


def gold_answer(dataset: str, row: dict) -> str:
    """GSM8K: the number after '#### ' of the gold solution; HotpotQA: the answer string."""
    return extract_gsm8k_answer(row["answer"]) if dataset == "gsm8k" else row["answer"]


def majority_answer(dataset: str, train_rows: list[dict]) -> str:
    """The training split's most common gold answer (HotpotQA's compared normalised; ties go to
    the first seen): a model that always says it sets the floor a bridge must clear."""
    answers = [gold_answer(dataset, row) for row in train_rows]
    key = (lambda answer: answer) if dataset == "gsm8k" else normalize_answer
    counts = Counter(key(answer) for answer in answers)
    top = counts.most_common(1)[0][0]
    return next(answer for answer in answers if key(answer) == top)


def majority_accuracy(dataset: str, answer: str, examples: list[EvalExample]) -> float:
    """Accuracy on ``examples`` of answering ``answer`` to every question."""
    return sum(score_extracted(dataset, answer, example.gold)["correct"] for example in examples) / len(examples)


def few_shots(dataset: str, train_rows: list[dict], eval_settings: dict) -> list[dict]:
    """The evaluation prompt's few-shot examples (GSM8K only), drawn from the training rows."""
    return sample_shots(train_rows, eval_settings["few_shot"], eval_settings["few_shot_seed"]) if dataset == "gsm8k" else []


def eval_examples(dataset: str, eval_rows: list[dict], train_rows: list[dict], eval_settings: dict) -> list[EvalExample]:
    """The first ``samples`` eval rows with their prompts; the few-shot prefix is drawn from the training rows."""
    samples, batch_size = eval_settings["samples"], eval_settings["batch_size"]
    rows = eval_rows[:samples]
    if len(rows) < batch_size:
        raise ValueError(
            f"config key 'bridge.eval.samples': the eval set has {len(rows)} rows, fewer than one batch "
            f"(bridge.eval.batch_size {batch_size})"
        )
    shots = few_shots(dataset, train_rows, eval_settings)
    return [
        EvalExample(index, row["question"], eval_prompt(dataset, row, shots), row["answer"], gold_answer(dataset, row))
        for index, row in enumerate(rows)
    ]
