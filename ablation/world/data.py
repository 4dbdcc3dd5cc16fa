"""Build the tiny world's data directory: corpus, tasks and instructions.

Every random stream is derived from the seed and a fixed label, so the output
is byte-identical for identical arguments and independent streams do not shift
when one component's size changes.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

from ablation.io import atomic_directory, atomic_write_text
from .corpus import generate_corpus
from .instructions import generate_instructions
from .tasks import write_dev_tasks, write_tasks
from .validation import require_int, require_positive
from .world import make_world

log = logging.getLogger(__name__)


def build_world_data(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    corpus_documents: int,
    eval_examples_per_task: int,
    instruction_examples: int,
) -> dict:
    """Write `corpus.txt`, `tasks/` and `instructions.jsonl` under `out_dir`.

    The corpus holds one document per paragraph, separated by blank lines.
    Each output is replaced atomically on its own and nothing else in
    `out_dir` is touched, so the directory can also hold later stages' outputs
    (tokenizer, model).  Returns a summary with the counts written to each file.
    """
    require_positive(
        corpus_documents=corpus_documents,
        eval_examples_per_task=eval_examples_per_task,
        instruction_examples=instruction_examples,
    )
    require_int(seed=seed)
    final = Path(out_dir).absolute()
    world = make_world(seed)
    docs = generate_corpus(world, random.Random(f"corpus:{seed}"), corpus_documents)
    # Documents contain single newlines at most, so blank lines delimit them.
    atomic_write_text(final / "corpus.txt", "\n\n".join(docs) + "\n")
    log.info("wrote %d corpus documents", len(docs))
    with atomic_directory(final / "tasks") as tmp:
        task_counts = write_tasks(world, seed, eval_examples_per_task, tmp, final / "tasks")
    log.info("wrote tasks %s", task_counts)
    records = generate_instructions(world, random.Random(f"instructions:{seed}"), instruction_examples)
    atomic_write_text(final / "instructions.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    log.info("wrote %d instruction records", len(records))
    return {
        "corpus.txt": {"documents": len(docs), "characters": sum(map(len, docs))},
        "tasks": task_counts,
        "instructions.jsonl": len(records),
    }


def build_dev_tasks(
    tasks_dir: str | os.PathLike, *, seed: int, eval_examples_per_task: int, dev_examples_per_task: int
) -> dict[str, int]:
    """Write the development split's tasks (`write_dev_tasks`) into `tasks_dir`, atomically.

    Fine-tune settings are chosen on it (`ablation.prefill.tuning`), never on
    the evaluation items.  Returns the item count of each task.
    """
    require_positive(eval_examples_per_task=eval_examples_per_task, dev_examples_per_task=dev_examples_per_task)
    require_int(seed=seed)
    final = Path(tasks_dir).absolute()
    with atomic_directory(final) as tmp:
        counts = write_dev_tasks(make_world(seed), seed, eval_examples_per_task, dev_examples_per_task, tmp, final)
    log.info("wrote development tasks %s", counts)
    return counts
