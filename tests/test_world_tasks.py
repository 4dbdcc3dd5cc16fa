"""The tiny tasks load through lm-eval's TaskManager offline and build the right requests."""

import json

import pytest

from ablation.world import TINY_TASKS, build_world_data

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
