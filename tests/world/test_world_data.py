"""Tests of the tiny world's data builder: determinism, shapes, hold-outs, arguments."""

import json
import random
import re

import pytest

from ablation.world import lexicon, moves, routes
from ablation.world.data import build_dev_tasks, build_world_data
from ablation.world.tasks import TINY_TASKS
from ablation.world.world import make_world

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


NAMES = lexicon.FEMALE_NAMES + lexicon.MALE_NAMES


def story_sentences(text):
    """The sentences of an item's prompt that tell its story (they name a character)."""
    sentences = re.split(r"(?<=[.?!])\s+", text.removesuffix("\nAnswer:"))
    return [s for s in sentences if not s.endswith("?") and any(re.search(rf"\b{n}\b", s) for n in NAMES)]


@pytest.fixture(scope="module")
def big_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    build_world_data(root, seed=0, corpus_documents=6000, eval_examples_per_task=60, instruction_examples=2000)
    return root


@pytest.mark.parametrize("task", TINY_TASKS)
def test_eval_items_are_not_in_the_training_text(big_world, task):
    """No item's question, and no sentence of its story, occurs in the corpus or the instructions."""
    training = (big_world / "corpus.txt").read_text() + (big_world / "instructions.jsonl").read_text()
    stories = 0
    for item in read_jsonl(big_world / "tasks" / f"{task}.jsonl"):
        prompt = item["sentence"].split("_")[0] if task == "tiny_winogrande" else item["query"]
        if task != "tiny_winogrande":
            assert prompt not in training
        for sentence in story_sentences(prompt):
            stories += 1
            assert sentence not in training, sentence
    assert stories >= (0 if task == "tiny_piqa" else 60)


def test_the_seed_1234_leak_is_gone(tmp_path):
    """The default world used to tell 16 arc_challenge and 3 winogrande items verbatim in its corpus."""
    build_world_data(tmp_path, seed=1234, corpus_documents=40000, eval_examples_per_task=300, instruction_examples=1)
    corpus = (tmp_path / "corpus.txt").read_text()
    told = {s for doc in corpus.split("\n\n") for s in re.split(r"(?<=[.?!])\s+", doc.replace("\n", " "))}
    for task in TINY_TASKS:
        for item in read_jsonl(tmp_path / "tasks" / f"{task}.jsonl"):
            prompt = item["sentence"].split("_")[0] if task == "tiny_winogrande" else item["query"]
            assert not told & set(story_sentences(prompt)), (task, prompt)


def test_items_draw_held_out_combinations_and_training_text_the_others():
    world = make_world(7)
    rng = random.Random(0)
    for heldout in (True, False):
        for _ in range(50):
            move = moves.sample_move(world, rng, "home", heldout=heldout)
            assert world.is_heldout("move", "home", move.person.name, move.old, move.new) == heldout
            _, route = routes.sample_route(rng, 4, world, heldout=heldout)
            assert world.is_heldout("route", *route) == heldout
    assert make_world(7).is_heldout("route", "a") == world.is_heldout("route", "a")  # a function of the seed
    assert [make_world(8).is_heldout("route", i) for i in range(64)] != [world.is_heldout("route", i) for i in range(64)]
    shares = [world.is_heldout("route", i) for i in range(4000)]
    assert 0.15 < sum(shares) / len(shares) < 0.25


@pytest.fixture(scope="module")
def dev_tasks(big_world):
    build_dev_tasks(big_world / "tasks_dev", seed=0, eval_examples_per_task=60, dev_examples_per_task=80)
    return big_world / "tasks_dev"


@pytest.mark.parametrize("task", TINY_TASKS)
def test_dev_items_tell_no_evaluation_story_and_none_from_the_training_text(big_world, dev_tasks, task):
    """The development split, on which fine-tune settings are chosen, shares no story with the evaluation."""
    evaluation = read_jsonl(big_world / "tasks" / f"{task}.jsonl")
    dev = read_jsonl(dev_tasks / f"{task}.jsonl")
    assert len(dev) == 80
    eval_stories = {tuple(item["story"]) for item in evaluation}
    dev_stories = {tuple(item["story"]) for item in dev}
    assert not eval_stories & dev_stories
    world = make_world(0)
    if task == "tiny_piqa":
        # every goal's one held-out template belongs to evaluation: dev asks in a corpus template
        assert all(world.heldout_goal[goal] != template for _, goal, template in dev_stories)
        return
    assert all(world.is_heldout(*story) for story in dev_stories)
    training = (big_world / "corpus.txt").read_text() + (big_world / "instructions.jsonl").read_text()
    eval_prompts = {item.get("query") or item["sentence"] for item in evaluation}
    for item in dev:
        prompt = item["sentence"].split("_")[0] if task == "tiny_winogrande" else item["query"]
        assert (item.get("query") or item["sentence"]) not in eval_prompts
        assert not any(sentence in training for sentence in story_sentences(prompt)), prompt


def test_dev_tasks_load_as_the_evaluation_tasks_and_are_reproducible(big_world, dev_tasks, tmp_path):
    """Same task names, data read from the dev directory, byte-identical when rebuilt."""
    from lm_eval.tasks import TaskManager

    build_dev_tasks(tmp_path / "again", seed=0, eval_examples_per_task=60, dev_examples_per_task=80)
    assert snapshot(tmp_path / "again") == snapshot(dev_tasks)
    tasks = TaskManager(include_path=str(dev_tasks)).load(list(TINY_TASKS))["tasks"]
    docs = list(tasks["tiny_arc_challenge"].dataset["validation"])
    assert docs[0]["query"] == read_jsonl(dev_tasks / "tiny_arc_challenge.jsonl")[0]["query"]


def test_writing_dev_tasks_leaves_the_evaluation_items_as_they_were(tmp_path):
    """The dev split is drawn after, and around, the evaluation items: those stay the ones written before."""
    build_world_data(tmp_path / "world", seed=5, **SIZES)
    before = snapshot(tmp_path / "world")
    build_dev_tasks(tmp_path / "world" / "tasks_dev", seed=5, eval_examples_per_task=24, dev_examples_per_task=10)
    assert {k: v for k, v in snapshot(tmp_path / "world").items() if not k.startswith("tasks_dev")} == before
    with pytest.raises(ValueError, match="dev_examples_per_task"):
        build_dev_tasks(tmp_path / "bad", seed=5, eval_examples_per_task=24, dev_examples_per_task=0)
    assert not (tmp_path / "bad").exists()


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
