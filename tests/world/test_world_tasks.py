"""The tiny tasks load through lm-eval's TaskManager offline and build the right requests."""

import json

import pytest

from ablation.world import lexicon
from ablation.world.data import build_world_data
from ablation.world.tasks import TINY_TASKS

N = 12


@pytest.fixture(scope="module")
def task_dict(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("world")
    build_world_data(root, seed=0, corpus_documents=50, eval_examples_per_task=N, instruction_examples=5)
    manager = TaskManager(include_path=str(root / "tasks"))
    assert "tiny" in manager.all_tags
    assert set(TINY_TASKS) <= set(manager.all_tasks)
    loaded = manager.load(list(TINY_TASKS))["tasks"]
    assert set(manager.load("tiny")["tasks"]) == set(TINY_TASKS)
    return root, loaded


def docs_of(root, task):
    return [json.loads(line) for line in (root / "tasks" / f"{task}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", TINY_TASKS)
def test_requests_match_documents(task_dict, task):
    root, tasks = task_dict
    t = tasks[task]
    t.build_all_requests(rank=0, world_size=1)
    docs = docs_of(root, task)
    n_choices = 2 if task in ("tiny_piqa", "tiny_winogrande") else 4
    assert len(t.instances) == N * n_choices
    assert all(inst.request_type == "loglikelihood" for inst in t.instances)
    first = [inst.args for inst in t.instances if inst.doc_id == 0]
    if task == "tiny_winogrande":
        # multiple-input mode: one context per option, the same continuation
        assert t.multiple_input == 2
        assert first == [(c, " " + docs[0]["target"]) for c in docs[0]["contexts"]]
    else:
        assert first == [(docs[0]["query"], " " + c) for c in docs[0]["choices"]]


@pytest.mark.parametrize("task", TINY_TASKS)
def test_gold_is_scored_correctly(task_dict, task):
    """Feeding back loglikelihoods that favour the gold choice gives acc 1."""
    root, tasks = task_dict
    t = tasks[task]
    for doc in docs_of(root, task)[:3]:
        n = len(doc["contexts"] if task == "tiny_winogrande" else doc["choices"])
        lls = [(0.0 if i == doc["label"] else -5.0, False) for i in range(n)]
        assert t.process_results(doc, lls)["acc"] == 1.0


@pytest.mark.parametrize(
    "task, gap", [("tiny_hellaswag", 1), ("tiny_arc_easy", 0), ("tiny_arc_challenge", 1), ("tiny_winogrande", 1), ("tiny_piqa", 0)]
)
def test_neutral_sentences_between_the_story_and_the_question(task, gap):
    """arc_challenge, winogrande and the route items put one neutral sentence before what they ask."""
    import random

    from ablation.world.tasks import GENERATORS
    from ablation.world.world import make_world

    for item in GENERATORS[task](make_world(3), random.Random(0), 40):
        prompt = item["sentence"] if task == "tiny_winogrande" else item["query"]
        assert sum(sentence in prompt for sentence in lexicon.FILLERS) == gap


def test_move_items_offer_the_old_value_as_a_distractor():
    import random

    from ablation.world import moves
    from ablation.world.tasks import arc_challenge_items, arc_easy_items
    from ablation.world.world import make_world

    world = make_world(3)
    for items in (arc_easy_items(world, random.Random(0), 40), arc_challenge_items(world, random.Random(1), 40)):
        for item in items:
            statement = item["query"].split(". ")[0]
            if not item["hop"]:
                # gold and the old value are both told in the first sentence
                in_context = [c for c in item["choices"] if c in statement]
                assert len(in_context) == 2 and item["choices"][item["label"]] in in_context
            assert len(set(item["choices"])) == 4
        assert {item["kind"] for item in items} == set(moves.KINDS) and {item["hop"] for item in items} == {False, True}
