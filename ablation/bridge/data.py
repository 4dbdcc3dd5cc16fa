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
from ablation.references import is_local_reference

REQUIRED_FIELDS = {"gsm8k": ("question", "answer"), "hotpotqa": ("question", "answer", "context")}
UNSCORABLE = (
    "HotpotQA scored with GSM8K's '#### n' rule (bridge.datasets.hotpotqa.scoring: gsm8k), as the original scored it: "
    "every gold answer extracts as [invalid], so no answer can score and its accuracies are no finding "
    "(the original's script compared the two strings, so it counted every answer without a '#### n' as right)"
)


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
    elif is_local_reference(source["path"]):  # a path that looks local is never taken for a hub id
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


def prompt_task(dataset: str, dataset_source: dict) -> str:
    """The task whose prompts ``dataset``'s rows are shown in (``bridge.datasets.<dataset>.prompts``):
    their own, or GSM8K's, which hold the question alone (how the original asked HotpotQA)."""
    return check_dataset(dataset) if dataset_source["prompts"] == "own" else dataset_source["prompts"]


def scoring_task(dataset: str, dataset_source: dict) -> str:
    """The task whose rule extracts and scores ``dataset``'s answers (``bridge.datasets.<dataset>.scoring``):
    their own, or GSM8K's '#### n' rule, under which no HotpotQA gold answer has a number (the original's)."""
    return check_dataset(dataset) if dataset_source["scoring"] == "own" else dataset_source["scoring"]


def unscorable_note(dataset: str, scoring: str) -> list[str]:
    """The note a run or report carries when its answers cannot be scored: HotpotQA under GSM8K's rule."""
    if dataset == "hotpotqa" and scoring == "gsm8k":
        return [UNSCORABLE]
    return []


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


def eval_examples(
    dataset: str, eval_rows: list[dict], train_rows: list[dict], eval_settings: dict, dataset_source: dict
) -> list[EvalExample]:
    """The first ``samples`` eval rows with their prompts and gold answers, in the dataset's prompts and
    scoring (``dataset_source``); the few-shot prefix is drawn from the training rows."""
    samples, batch_size = eval_settings["samples"], eval_settings["batch_size"]
    rows = eval_rows[:samples]
    if len(rows) < batch_size:
        raise ValueError(
            f"config key 'bridge.eval.samples': the eval set has {len(rows)} rows, fewer than one batch "
            f"(bridge.eval.batch_size {batch_size})"
        )
    prompts, scoring = prompt_task(dataset, dataset_source), scoring_task(dataset, dataset_source)
    shots = few_shots(prompts, train_rows, eval_settings)
    return [
        EvalExample(index, row["question"], eval_prompt(prompts, row, shots), row["answer"], gold_answer(scoring, row))
        for index, row in enumerate(rows)
    ]
