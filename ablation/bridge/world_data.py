"""Data of the tiny latent bridge: GSM8K- and HotpotQA-shaped splits and the corpus its two LMs pre-train on.

The embedded bridge study pairs two tiny LMs of its own, a Mistral-architecture
source and a wider Llama-architecture target, each pre-trained by
`ablation.world.pretrain` on `corpus.txt` with its own tokenizer.  Rows
come from the tiny world's generators (`ablation.world`).  The corpus renders training
rows only, through the study's own prompts (`ablation.bridge.prompts`), in two
forms:

* text mode, `task_prompt + answer_text`: the target answers from the prompt;
* soft mode, `soft_slot_prompt + answer_text` (question text + BOS +
  SOFT_SUFFIX): what the target reads when the bridge replaces the question
  by soft tokens, which are followed by the target tokenizer's BOS and the
  suffix line (`prompts.soft_question` says which text the soft tokens stand
  for).

A few plain world-fact paragraphs (cities' countries, jobs' workplaces) back
the second hop of the two-hop questions.  Prompts contain blank lines, so
documents are separated by two blank lines (`DOCUMENT_SEPARATOR`), which no
document contains.  Every random stream is derived from the seed and a fixed
label; test rows are drawn first and training rows never repeat them (GSM8K
by question, HotpotQA by question and context), so no test item reaches the
training split or the corpus.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from pathlib import Path

from ablation.bridge.prompts import answer_text, soft_slot_prompt, task_prompt
from ablation.io import atomic_write_jsonl, atomic_write_text
from ablation.world.arithmetic import arithmetic_row
from ablation.world.corpus import DOCUMENT_SEPARATOR, geography_doc, occupation_doc
from ablation.world.tokenizer import SPECIAL_TOKENS
from ablation.world.twohop import first_hop, twohop_row
from ablation.world.validation import require_int, require_positive
from ablation.world.world import World, make_world

log = logging.getLogger(__name__)

# Split files in the hub datasets' split names.
SPLITS = {"gsm8k": ("train", "test"), "hotpotqa": ("train", "validation")}

def build_bridge_world_data(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    train_examples: int,
    test_examples: int,
    corpus_documents: int,
) -> dict:
    """Write both tasks' splits and `corpus.txt` under `out_dir`; return the counts written.

    Each file is replaced atomically on its own and nothing else in `out_dir`
    is touched, so it can also hold the tokenizers and the two models.
    """
    require_positive(train_examples=train_examples, test_examples=test_examples, corpus_documents=corpus_documents)
    require_int(seed=seed)
    final = Path(out_dir).absolute()
    world = make_world(seed)
    rows = {}
    for dataset, make_row in (("gsm8k", lambda rng, _: arithmetic_row(rng)), ("hotpotqa", lambda rng, i: twohop_row(world, rng, i))):
        train_split, test_split = SPLITS[dataset]
        seen: set[str] = set()
        test = draw_rows(dataset, make_row, random.Random(f"{dataset}-{test_split}:{seed}"), test_split, test_examples, seen)
        train = draw_rows(dataset, make_row, random.Random(f"{dataset}-{train_split}:{seed}"), train_split, train_examples, seen)
        rows[dataset] = train
        for split, split_rows in ((train_split, train), (test_split, test)):
            atomic_write_jsonl(final / dataset / f"{split}.jsonl", split_rows)
    docs = bridge_corpus(world, rows, random.Random(f"bridge-corpus:{seed}"), corpus_documents)
    atomic_write_text(final / "corpus.txt", DOCUMENT_SEPARATOR.join(docs) + "\n")
    log.info("wrote %d bridge corpus documents", len(docs))
    summary = {f"{d}/{s}.jsonl": train_examples if s == "train" else test_examples for d in SPLITS for s in SPLITS[d]}
    summary["corpus.txt"] = {"documents": len(docs), "characters": sum(map(len, docs))}
    return summary


def item_key(dataset: str, row: dict) -> str:
    """What makes two rows the same item: the question, and for HotpotQA its paragraphs too."""
    return row["question"] if dataset == "gsm8k" else task_prompt(dataset, row)


def draw_rows(
    dataset: str,
    make_row: Callable[[random.Random, str], dict],
    rng: random.Random,
    split: str,
    count: int,
    seen: set[str],
) -> list[dict]:
    """`count` rows whose items are not in `seen` (which grows with them)."""
    rows: list[dict] = []
    for _ in range(100 * count):
        row = make_row(rng, f"{dataset}-{split}-{len(rows):05d}")
        key = item_key(dataset, row)
        if key not in seen:
            seen.add(key)
            rows.append(row)
            if len(rows) == count:
                return rows
    raise ValueError(f"could not draw {count} distinct {dataset} {split} rows")


def text_document(dataset: str, row: dict) -> str:
    """The target answering from the literal prompt."""
    return task_prompt(dataset, row) + answer_text(dataset, row)


def soft_document(dataset: str, row: dict) -> str:
    """The target answering after BOS and the soft-token suffix line."""
    return soft_slot_prompt(dataset, row, SPECIAL_TOKENS["bos_token"]) + answer_text(dataset, row)


def first_hop_document(dataset: str, row: dict) -> str:
    """A two-hop row's first sub-question in text mode: direct practice of the in-context hop."""
    return text_document(dataset, first_hop(row))


# (what a document renders, weight): both tasks in both forms, first hops and a few world facts.
DOCUMENT_KINDS = (
    (("gsm8k", text_document), 3.0),
    (("gsm8k", soft_document), 2.0),
    (("hotpotqa", text_document), 3.0),
    (("hotpotqa", soft_document), 2.0),
    (("hotpotqa", first_hop_document), 2.0),
    (("world", geography_doc), 0.3),
    (("world", occupation_doc), 0.3),
)


def bridge_corpus(world: World, rows: dict[str, list[dict]], rng: random.Random, n_documents: int) -> list[str]:
    """`n_documents` documents, kinds drawn by weight, each rendering a random training row."""
    kinds, weights = zip(*DOCUMENT_KINDS)
    docs = []
    for source, render in rng.choices(kinds, weights, k=n_documents):
        docs.append(render(world, rng) if source == "world" else render(source, rng.choice(rows[source])))
    return docs
