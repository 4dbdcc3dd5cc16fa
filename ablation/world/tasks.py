"""The five tiny zero-shot tasks and their lm-eval task configs.

Each task mirrors the shape of a real benchmark so that the evaluation code
path (lm-eval `multiple_choice` loglikelihood scoring) is exactly the one used
for real models:

* tiny_hellaswag - 4-way completion of a multi-sentence activity narrative;
* tiny_piqa - 2-way goal -> solution, asked with a held-out question template;
* tiny_arc_easy - 4-way single-hop world knowledge, held-out template;
* tiny_arc_challenge - 4-way two-hop question: retrieve a fresh in-context
  fact among distractor facts, then apply world knowledge to it;
* tiny_winogrande - 2-way fill-the-blank with lm-eval's partial scoring
  (`doc_to_text` gives the gold index, each choice is a context, the shared
  rest of the sentence is the scored continuation).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import yaml

from ablation.study import TINY_TASKS

from . import bindings, lexicon, narratives
from .world import World, all_goals, goal_question, knowledge_question, sample_people, solution, tool_for

TAG = "tiny"


def hellaswag_items(world: World, rng: random.Random, n: int) -> list[dict]:
    """Narratives cut before step k of an activity; pick the step that comes next.

    Two distractors come from the same activity (the step just done, and one
    out of order), so knowing the topic is not enough: the model has to track
    which step was narrated last.  The third is step k of another activity.
    """
    combos = [(a, k) for a in lexicon.SCRIPTS for k in range(1, len(lexicon.SCRIPTS[a]))]
    items = []
    for activity, k in balanced(rng, combos, n):
        (person,) = sample_people(rng, 1)
        steps = lexicon.SCRIPTS[activity]
        sentences = narratives.story_prefix(rng, person, activity, k, filler_p=0.5)
        context = " ".join(sentences) + " " + narratives.step_lead(rng, k, person)
        out_of_order = k + 1 if k + 1 < len(steps) else k - 2
        other = rng.choice([a for a in lexicon.SCRIPTS if a != activity])
        endings = [f"{s}." for s in (steps[k], steps[k - 1], steps[out_of_order], lexicon.SCRIPTS[other][k])]
        items.append(_multiple_choice(rng, context, endings[0], endings[1:], activity=activity))
    return items


def piqa_items(world: World, rng: random.Random, n: int) -> list[dict]:
    """A goal and two solutions that differ in the tool used."""
    items = []
    for goal in balanced(rng, all_goals(), n):
        tool = tool_for(goal)
        wrong = rng.choice([t for t in lexicon.TOOLS if t != tool])
        query = f"{goal_question(goal, world.heldout_goal[goal])}\nAnswer:"
        items.append(_multiple_choice(rng, query, solution(tool, goal), [solution(wrong, goal)], goal=goal))
    return items


def arc_easy_items(world: World, rng: random.Random, n: int) -> list[dict]:
    """Single-hop knowledge questions with three distractor answers."""
    items = []
    for fact in balanced(rng, world.facts(), n):
        query = f"{knowledge_question(fact, world.heldout_knowledge[(fact.kind, fact.subject)])}\nAnswer:"
        wrong = rng.sample([o for o in fact.options if o != fact.answer], 3)
        items.append(_multiple_choice(rng, query, fact.answer, wrong, kind=fact.kind))
    return items


def arc_challenge_items(world: World, rng: random.Random, n: int) -> list[dict]:
    """Three in-context facts; answer about one character, directly or via a hop."""
    items = []
    for kind, hop in balanced(rng, [(k, h) for k in bindings.KINDS for h in (False, True)], n):
        bs = bindings.sample_bindings(world, rng, kind, sample_people(rng, 3))
        target, *others = rng.sample(bs, len(bs))
        gold = bindings.answer(world, target, hop)
        # The other characters' answers are the distractors a careless reader picks.
        wrong = [bindings.answer(world, b, hop) for b in others]
        spare = [o for o in bindings.answer_options(world, kind, hop) if o not in wrong and o != gold]
        wrong.append(rng.choice(spare))
        query = f"{bindings.random_statements(rng, bs)} {bindings.question(target, hop)}\nAnswer:"
        items.append(_multiple_choice(rng, query, gold, wrong, kind=kind, hop=hop))
    return items


def winogrande_items(world: World, rng: random.Random, n: int) -> list[dict]:
    """Two characters, one blank; only the right name makes the ending true."""
    items = []
    for kind, hop in balanced(rng, [(k, h) for k in bindings.KINDS for h in (False, True)], n):
        bs = bindings.sample_bindings(world, rng, kind, sample_people(rng, 2))
        intro = bindings.joined_statement(*bs) if rng.random() < 0.5 else bindings.random_statements(rng, bs)
        label = rng.randrange(2)
        lead, rest = bindings.consequence(world, rng, bs[label], hop)
        options = [b.person.name for b in bs]
        items.append(
            {
                "sentence": f"{intro} {lead}_ {rest}",
                "option1": options[0],
                "option2": options[1],
                "contexts": [f"{intro} {lead}{o}" for o in options],
                "target": rest,
                "label": label,
                "kind": kind,
                "hop": hop,
            }
        )
    return items


def balanced(rng: random.Random, pool: list, n: int) -> list:
    """`n` draws that cycle through shuffled copies of `pool` (even coverage)."""
    out: list = []
    while len(out) < n:
        batch = list(pool)
        rng.shuffle(batch)
        out.extend(batch)
    return out[:n]


def _multiple_choice(rng: random.Random, query: str, gold: str, wrong: list[str], **meta: object) -> dict:
    """A shuffled multiple-choice record with the gold index in `label`."""
    choices = [gold, *wrong]
    rng.shuffle(choices)
    return {"query": query, "choices": choices, "label": choices.index(gold), **meta}


GENERATORS: dict[str, Callable[[World, random.Random, int], list[dict]]] = {
    "tiny_hellaswag": hellaswag_items,
    "tiny_piqa": piqa_items,
    "tiny_arc_easy": arc_easy_items,
    "tiny_arc_challenge": arc_challenge_items,
    "tiny_winogrande": winogrande_items,
}


def task_config(name: str, data_file: Path) -> dict:
    """lm-eval YAML config of task `name` reading the absolute `data_file`."""
    if name == "tiny_winogrande":
        fields = {"doc_to_text": "label", "doc_to_choice": "contexts", "doc_to_target": "target"}
    else:
        fields = {"doc_to_text": "query", "doc_to_choice": "choices", "doc_to_target": "label"}
    return {
        "task": name,
        "tag": [TAG],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"validation": str(data_file)}},
        "output_type": "multiple_choice",
        "validation_split": "validation",
        **fields,
        "metric_list": [
            {"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")
        ],
        "metadata": {"version": 1.0},
    }


def write_tasks(world: World, seed: int, n: int, tasks_dir: Path, final_tasks_dir: Path) -> dict[str, int]:
    """Write `<task>.jsonl` and `<task>.yaml` into `tasks_dir`; return item counts.

    The YAML points at `final_tasks_dir`, the place the directory will have once
    it is moved into position, because lm-eval needs absolute data paths.
    """
    tasks_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in TINY_TASKS:
        items = GENERATORS[name](world, random.Random(f"{name}:{seed}"), n)
        lines = "".join(json.dumps(item) + "\n" for item in items)
        (tasks_dir / f"{name}.jsonl").write_text(lines, encoding="utf-8")
        config = task_config(name, final_tasks_dir / f"{name}.jsonl")
        (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        counts[name] = len(items)
    return counts
