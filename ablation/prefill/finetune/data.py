"""Alpaca-format instruction data: loading, prompt formatting, tokenisation and collation.

The prompt template and the response + EOS target follow the original study
(docs/prefill.md, "Fine-tuning"); the loss covers response tokens only. How records become rows
(stripping, a BOS token, long and empty rows) is a ``DataPreparation``, the original's among its
choices. The collator carries each row's prompt length, from which the training mask is built
in one vectorised step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, load_dataset
from torch.nn.utils.rnn import pad_sequence

log = logging.getLogger(__name__)

ALPACA_FIELDS = ("instruction", "input", "output")
IGNORE_INDEX = -100  # label value the loss skips
LONG_ROWS = ("skip", "truncate")
EMPTY_RESPONSES = ("skip", "keep", "error")


@dataclass(frozen=True)
class DataPreparation:
    """How instruction records become training rows; the schema documents each choice and the original's.

    ``FinetuneSettings`` checks the values (LONG_ROWS, EMPTY_RESPONSES).
    """

    strip_fields: bool  # .strip() instruction, input and output (the original did)
    prompt_bos: bool  # the tokenizer's special tokens (a BOS) before the prompt (the original had none)
    long_rows: str  # longer than max_seq_len: 'skip' the row or 'truncate' it (the original truncated)
    empty_responses: str  # an empty output: 'skip' the row, 'keep' it (trained to answer EOS), or stop with an 'error', as the original did on an empty instruction or output


def format_prompt(instruction: str, input_text: str) -> str:
    """The original's template; the Input block is left out when the input is empty."""
    if input_text.strip():
        return f"### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    return f"### Instruction:\n{instruction}\n\n### Response:\n"


def check_fields(dataset: Dataset, source: str) -> None:
    missing = [field for field in ALPACA_FIELDS if field not in dataset.column_names]
    if missing:
        raise ValueError(
            f"instruction data {source!r} lacks field(s) {', '.join(missing)}; alpaca records need "
            f"{', '.join(ALPACA_FIELDS)} (found: {', '.join(dataset.column_names)})"
        )


def load_instruction_splits(
    source: str, *, seed: int, train_samples: int, eval_samples: int, eval_fraction: float
) -> tuple[Dataset, Dataset]:
    """Train and eval records from a JSONL file or a hub dataset.

    A dataset without an eval split has ``eval_fraction`` of its records held out (seeded), as
    the original did with yahma/alpaca-cleaned. Both splits are shuffled and capped; ``seed``
    draws the split and the subsets (the original's 42, not its run seed).
    """
    if Path(source).suffix == ".jsonl":
        if not Path(source).is_file():
            raise FileNotFoundError(f"instruction data {source!r} does not exist")
        splits = load_dataset("json", data_files=str(source))
    else:
        splits = load_dataset(source)
    eval_split = next((name for name in ("validation", "test") if name in splits), None)
    if eval_split is None:
        held_out = splits["train"].train_test_split(test_size=eval_fraction, seed=seed)
        train, evaluation = held_out["train"], held_out["test"]
    else:
        train, evaluation = splits["train"], splits[eval_split]
    for split in (train, evaluation):
        check_fields(split, source)
    train = train.shuffle(seed=seed).select(range(min(train_samples, len(train))))
    evaluation = evaluation.shuffle(seed=seed).select(range(min(eval_samples, len(evaluation))))
    return train, evaluation


@dataclass
class TokenizedSplit:
    examples: list[dict]  # input_ids, labels, prompt_length
    skipped_empty_response: int
    skipped_too_long: int  # skipped, or (when truncating) left with no response token
    truncated: int


def tokenize_records(records: Dataset, tokenizer, max_seq_len: int, preparation: DataPreparation) -> TokenizedSplit:
    """Prompt + response + EOS with prompt labels masked, prepared as ``preparation`` says.

    A row longer than ``max_seq_len`` is skipped (a truncated instruction is a different
    instruction) or truncated, as the original did; a truncated row without a response token left
    is dropped. Skipped and dropped rows are counted.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; the fine-tuning target ends with one")
    clean = str.strip if preparation.strip_fields else str
    fields = [{name: clean(record[name] or "") for name in ALPACA_FIELDS} for record in records]
    prompts = [format_prompt(row["instruction"], row["input"]) for row in fields]
    responses = [row["output"] for row in fields]
    prompt_ids = tokenizer(prompts, add_special_tokens=preparation.prompt_bos)["input_ids"]
    response_ids = tokenizer(responses, add_special_tokens=False)["input_ids"]
    examples, empty, too_long, truncated = [], 0, 0, 0
    for index, (prompt, response, text) in enumerate(zip(prompt_ids, response_ids, responses)):
        if preparation.empty_responses == "error" and not (text.strip() and fields[index]["instruction"].strip()):
            raise ValueError(f"instruction record {index} of the split has an empty instruction or output "
                             "(finetune empty_responses: error, as the original stopped)")  # fmt: skip
        if preparation.empty_responses == "skip" and not text.strip():
            empty += 1
            continue
        target = response + [tokenizer.eos_token_id]
        if len(prompt) + len(target) > max_seq_len:
            if preparation.long_rows == "skip" or len(prompt) >= max_seq_len:
                too_long += 1
                continue
            truncated += 1
            target = target[: max_seq_len - len(prompt)]
        examples.append(
            {"input_ids": prompt + target, "labels": [IGNORE_INDEX] * len(prompt) + target, "prompt_length": len(prompt)}
        )
    if empty or too_long or truncated:
        log.warning(
            "skipped %d records with an empty response and %d longer than %d tokens; truncated %d",
            empty, too_long, max_seq_len, truncated,
        )
    if not examples:
        raise ValueError(f"no usable instruction records: {empty} empty responses, {too_long} longer than max_seq_len {max_seq_len}")
    return TokenizedSplit(examples, empty, too_long, truncated)


@dataclass
class PromptAwareCollator:
    """Right-pads a batch and keeps each row's prompt length for the training mask."""

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        def pad(key: str, value: int) -> torch.Tensor:
            return pad_sequence([torch.tensor(e[key]) for e in examples], batch_first=True, padding_value=value)

        input_ids = pad("input_ids", self.pad_token_id)
        lengths = torch.tensor([len(e["input_ids"]) for e in examples])
        return {
            "input_ids": input_ids,
            "labels": pad("labels", IGNORE_INDEX),
            "attention_mask": (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long(),
            "prompt_lengths": torch.tensor([e["prompt_length"] for e in examples]),
        }
