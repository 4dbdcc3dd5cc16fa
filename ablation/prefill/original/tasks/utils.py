"""The original study's prompt formats, as lm-eval ``process_docs`` functions.

Each turns a hub row into ``query`` (the prompt), ``choices`` (each exactly as the original
appended it to the prompt; the tasks' ``target_delimiter`` is empty) and ``gold`` (the answer's
index). Whitespace inside every field is collapsed to single spaces, as the original did, except
in winogrande, which the original scored raw; the ``\\nAnswer:`` the original appended is kept as
written.
"""

from __future__ import annotations

import datasets


def collapse(text: str) -> str:
    """Runs of whitespace to one space, ends stripped."""
    return " ".join(text.split())


def hellaswag_doc(row: dict) -> dict:
    query = collapse(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b']}")
    return {"query": query, "choices": [" " + collapse(ending) for ending in row["endings"]], "gold": int(row["label"])}


def piqa_doc(row: dict) -> dict:
    choices = [" " + collapse(row["sol1"]), " " + collapse(row["sol2"])]
    return {"query": collapse(row["goal"]) + "\nAnswer:", "choices": choices, "gold": int(row["label"])}


def arc_doc(row: dict) -> dict:
    labels = row["choices"]["label"]
    choices = [" " + collapse(text) for text in row["choices"]["text"]]
    return {"query": collapse(row["question"]) + "\nAnswer:", "choices": choices, "gold": labels.index(row["answerKey"])}


def has_known_answer(row: dict) -> bool:
    """The original skipped ARC rows whose answerKey is not among the choice labels."""
    return row["answerKey"] in row["choices"]["label"]


def winogrande_doc(row: dict) -> dict:
    """Prompt: the sentence up to the blank; choice: the option and the rest of the sentence.

    Both choices share the prompt (the original scored them as continuations of it), so the
    prompt keeps the space before the blank. Sentence and options are used raw, whitespace and
    all, as the original did.
    """
    before, rest = row["sentence"].split("_", 1)
    choices = [row["option1"] + rest, row["option2"] + rest]
    return {"query": before, "choices": choices, "gold": int(row["answer"]) - 1}


def process_hellaswag(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.map(hellaswag_doc)


def process_piqa(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.map(piqa_doc)


def process_arc(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.filter(has_known_answer).map(arc_doc)


def process_winogrande(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.map(winogrande_doc)


def doc_to_text(doc: dict) -> str:
    return doc["query"]


def doc_to_choice(doc: dict) -> list[str]:
    return doc["choices"]


def doc_to_target(doc: dict) -> int:
    return doc["gold"]
