"""Tests of the tiny world's data builder: determinism, shapes, hold-outs, arguments."""

import json

import pytest

from ablation.world import TINY_TASKS, build_world_data

SIZES = dict(corpus_documents=200, eval_examples_per_task=24, instruction_examples=30)


def snapshot(root):
    """All files under `root` as {relative path: bytes}, YAML paths made relative."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = path.read_bytes().replace(str(root).encode(), b"<ROOT>")
    return out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_is_byte_identical(tmp_path):
    build_world_data(tmp_path / "a", seed=3, **SIZES)
    build_world_data(tmp_path / "b", seed=3, **SIZES)
    first = snapshot(tmp_path / "a")
    assert first == snapshot(tmp_path / "b")
    build_world_data(tmp_path / "a", seed=3, **SIZES)  # rebuilding in place is identical too
    assert first == snapshot(tmp_path / "a")


def test_different_seed_differs(tmp_path):
    build_world_data(tmp_path / "a", seed=3, **SIZES)
    build_world_data(tmp_path / "b", seed=4, **SIZES)
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in ("corpus.txt", "instructions.jsonl", "tasks/tiny_arc_easy.jsonl"):
        assert a[name] != b[name]


def test_layout_and_summary(tmp_path):
    out = tmp_path / "world"
    summary = build_world_data(out, seed=0, **SIZES)
    assert summary["corpus.txt"]["documents"] == SIZES["corpus_documents"]
    assert summary["tasks"] == {t: SIZES["eval_examples_per_task"] for t in TINY_TASKS}
    assert summary["instructions.jsonl"] == SIZES["instruction_examples"]
    docs = (out / "corpus.txt").read_text().strip().split("\n\n")
    assert len(docs) == SIZES["corpus_documents"]
    assert sorted(p.name for p in out.iterdir()) == ["corpus.txt", "instructions.jsonl", "tasks"]
    assert [p.name for p in tmp_path.iterdir()] == ["world"]  # no temporary sibling left


def test_rebuild_keeps_other_outputs_in_the_directory(tmp_path):
    # The workflow keeps the tokenizer and model next to the data.
    (tmp_path / "base_model").mkdir()
    (tmp_path / "base_model" / "config.json").write_text("{}")
    build_world_data(tmp_path, seed=0, **SIZES)
    build_world_data(tmp_path, seed=1, **SIZES)
    assert (tmp_path / "base_model" / "config.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base_model", "corpus.txt", "instructions.jsonl", "tasks"]


def test_instruction_records(tmp_path):
    build_world_data(tmp_path, seed=0, **SIZES)
    for record in read_jsonl(tmp_path / "instructions.jsonl"):
        assert set(record) == {"instruction", "input", "output"}
        assert record["instruction"] and record["output"]


@pytest.mark.parametrize("task", TINY_TASKS)
def test_task_items_are_well_formed(tmp_path, task):
    build_world_data(tmp_path, seed=0, **SIZES)
    items = read_jsonl(tmp_path / "tasks" / f"{task}.jsonl")
    assert len(items) == SIZES["eval_examples_per_task"]
    n_choices = 2 if task in ("tiny_piqa", "tiny_winogrande") else 4
    for item in items:
        choices = item["contexts"] if task == "tiny_winogrande" else item["choices"]
        assert len(choices) == n_choices and len(set(choices)) == n_choices
        assert item["label"] in range(n_choices)


def test_winogrande_contexts_fill_the_blank(tmp_path):
    build_world_data(tmp_path, seed=0, **SIZES)
    for item in read_jsonl(tmp_path / "tasks" / "tiny_winogrande.jsonl"):
        before, after = item["sentence"].split("_")
        assert after.strip() == item["target"]
        assert item["contexts"] == [before + item["option1"], before + item["option2"]]


def test_gold_labels_vary(tmp_path):
    build_world_data(tmp_path, seed=0, **SIZES)
    for task in TINY_TASKS:
        labels = {item["label"] for item in read_jsonl(tmp_path / "tasks" / f"{task}.jsonl")}
        assert len(labels) > 1, task


@pytest.mark.parametrize("task", ["tiny_arc_easy", "tiny_piqa"])
def test_eval_questions_are_not_in_the_corpus(tmp_path, task):
    build_world_data(tmp_path, seed=0, corpus_documents=2000, eval_examples_per_task=40, instruction_examples=1)
    corpus = (tmp_path / "corpus.txt").read_text()
    for item in read_jsonl(tmp_path / "tasks" / f"{task}.jsonl"):
        question = item["query"].removesuffix("\nAnswer:")
        assert f"{question}\nAnswer:" not in corpus


@pytest.mark.parametrize(
    "name, value",
    [("corpus_documents", 0), ("eval_examples_per_task", -1), ("instruction_examples", 2.5), ("seed", "1")],
)
def test_bad_arguments_raise(tmp_path, name, value):
    args = dict(seed=0, **SIZES)
    args[name] = value
    with pytest.raises(ValueError, match=name):
        build_world_data(tmp_path / "w", **args)
    assert not (tmp_path / "w").exists()
