"""The five tiny zero-shot tasks and their lm-eval task configs.

Each task mirrors the shape of a real benchmark so that the evaluation code
path (lm-eval `multiple_choice` loglikelihood scoring) is exactly the one used
for real models:

* tiny_hellaswag - 4-way completion of a retold walk along a fresh route of
  places (the next place must be copied from the first telling, a neutral
  sentence back);
* tiny_piqa - 2-way goal -> solution, asked with a held-out question template;
* tiny_arc_easy - 4-way question about a fresh in-context fact that has
  a same-kind distractor fact next to it (old vs new city or job), asked
  directly or through a memorised world fact (the new city's country),
  right after the sentence that states it;
* tiny_arc_challenge - the same question asked a neutral story sentence after
  the fact;
* tiny_winogrande - 2-way fill-the-blank with lm-eval's partial scoring
  (`doc_to_text` gives the gold index, each choice is a context, the shared
  rest of the sentence is the scored continuation); the blank is the old or
  the new value of such an in-context change, a neutral sentence later.

Every item's story (route, character's move) is a held-out combination of the
world (`World.is_heldout`) that the corpus never tells.  The corpus never puts
a neutral sentence between a walk or a move and what is said about it; the
route, arc_challenge and winogrande items do, as a real benchmark's prompt is
longer than the sentences it was learnt from.

A development split (`write_dev_tasks`) draws the same tasks from held-out
stories that no evaluation item tells, for choosing fine-tune settings
without looking at the evaluation items.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import lexicon, moves, routes
from .world import GOAL_QUESTIONS, World, all_goals, goal_question, neutral_sentences, solution, tool_for

TAG = "tiny"


@dataclass(frozen=True)
class ItemSplit:
    """Which held-out items a generator draws: evaluation items, or development items.

    Both use stories the corpus never tells.  Development items also avoid
    every story an evaluation item tells (`avoid`, of story keys), and ask the
    piqa goals in a corpus template, because each goal's one held-out template
    belongs to evaluation: the dev piqa measures what the model remembers.
    """

    dev: bool = False
    avoid: frozenset[tuple] = frozenset()


EVAL = ItemSplit()


def hellaswag_items(world: World, rng: random.Random, n: int, split: ItemSplit = EVAL) -> list[dict]:
    """A walk along a fresh route, retold up to a place; pick the place that comes next.

    The distractors are the previous place, the one after next and a place
    off the route (see `routes`), so only reading the route in order answers.
    A neutral sentence stands between the telling and the retold leg, and
    routes are held-out ones, never told in the corpus.
    """
    items = []
    for length in balanced(rng, list(routes.LENGTHS), n):
        person, route = routes.sample_route(rng, length, world, heldout=True, avoid=split.avoid)
        context, gold, wrong = routes.completion_item(rng, person, route, gap=1)
        story = routes.story_key(route)
        items.append(_multiple_choice(rng, context, f"{gold}.", [f"{w}." for w in wrong], route_length=length, story=story))
    return items


def piqa_items(world: World, rng: random.Random, n: int, split: ItemSplit = EVAL) -> list[dict]:
    """A goal and two solutions that differ in the tool used."""
    items = []
    for goal in balanced(rng, all_goals(), n):
        tool = tool_for(goal)
        wrong = rng.choice([t for t in lexicon.TOOLS if t != tool])
        template = world.heldout_goal[goal]
        if split.dev:
            template = (template + 1) % len(GOAL_QUESTIONS)
        query = f"{goal_question(goal, template)}\nAnswer:"
        story = ("goal", goal, template)
        items.append(_multiple_choice(rng, query, solution(tool, goal), [solution(wrong, goal)], goal=goal, story=story))
    return items


def arc_easy_items(world: World, rng: random.Random, n: int, split: ItemSplit = EVAL) -> list[dict]:
    """A change of city or job; ask about the current one, directly or via a hop, right after it.

    The old value's answer is always among the choices: a reader who takes
    the wrong one of the two in-context facts picks it.
    """
    return _move_items(world, rng, n, split, gap=0)


def arc_challenge_items(world: World, rng: random.Random, n: int, split: ItemSplit = EVAL) -> list[dict]:
    """The same question as `arc_easy_items`, asked a neutral story sentence after the change."""
    return _move_items(world, rng, n, split, gap=1)


def _move_items(world: World, rng: random.Random, n: int, split: ItemSplit, gap: int) -> list[dict]:
    """Move questions asked `gap` neutral sentences after the change, kinds, templates and depths balanced."""
    items = []
    combos = [(k, t, h) for k in moves.KINDS for t in range(len(moves.TRANSITIONS[k])) for h in (False, True)]
    for kind, template, hop in balanced(rng, combos, n):
        move = moves.sample_move(world, rng, kind, heldout=True, avoid=split.avoid)
        gold = moves.answer(world, move, move.new, hop)
        wrong = [moves.answer(world, move, move.old, hop)]
        wrong += rng.sample([o for o in moves.answer_options(world, kind, hop) if o not in (gold, wrong[0])], 2)
        sentences = [moves.statement(move, template), *neutral_sentences(rng, gap)]
        query = f"{' '.join(sentences)} {moves.question(move, hop)}\nAnswer:"
        new_first = moves.TRANSITIONS[kind][template][1]
        story = moves.story_key(move)
        items.append(_multiple_choice(rng, query, gold, wrong, kind=kind, hop=hop, new_first=new_first, gap=gap, story=story))
    return items


def winogrande_items(world: World, rng: random.Random, n: int, split: ItemSplit = EVAL) -> list[dict]:
    """A change of city or job, a neutral sentence, then a sentence whose blank is the old or new value."""
    items = []
    combos = [(k, t, b) for k in moves.KINDS for t in range(len(moves.TRANSITIONS[k])) for b in range(len(moves.BLANKS[k]))]
    for kind, template, blank in balanced(rng, combos, n):
        move = moves.sample_move(world, rng, kind, heldout=True, avoid=split.avoid)
        intro = " ".join([moves.statement(move, template), *neutral_sentences(rng, 1)])
        lead, value, rest = moves.blank_sentence(move, blank)
        options = [move.old, move.new]
        rng.shuffle(options)
        items.append(
            {
                "sentence": f"{intro} {lead}_ {rest}",
                "option1": options[0],
                "option2": options[1],
                "contexts": [f"{intro} {lead}{o}" for o in options],
                "target": rest,
                "label": options.index(value),
                "kind": kind,
                "new_first": moves.TRANSITIONS[kind][template][1],
                "story": moves.story_key(move),
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


GENERATORS: dict[str, Callable[[World, random.Random, int, ItemSplit], list[dict]]] = {
    "tiny_hellaswag": hellaswag_items,
    "tiny_piqa": piqa_items,
    "tiny_arc_easy": arc_easy_items,
    "tiny_arc_challenge": arc_challenge_items,
    "tiny_winogrande": winogrande_items,
}
# The tasks the world generates, in the order of the prefill study's real tasks they stand for.
TINY_TASKS = tuple(GENERATORS)


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
    """Write the evaluation items' `<task>.jsonl` and `<task>.yaml` into `tasks_dir`; return item counts.

    The YAML points at `final_tasks_dir`, the place the directory will have once
    it is moved into position, because lm-eval needs absolute data paths.
    """
    return _write_task_files(eval_items(world, seed, n), tasks_dir, final_tasks_dir)


def write_dev_tasks(
    world: World, seed: int, eval_examples: int, n: int, tasks_dir: Path, final_tasks_dir: Path
) -> dict[str, int]:
    """Write `n` development items per task, none telling a story that an evaluation item tells.

    The task names are the evaluation tasks' own, so an evaluation reads this
    directory in place of the evaluation one; `eval_examples` must be the
    evaluation set's size, whose stories are avoided.
    """
    evaluation = eval_items(world, seed, eval_examples)
    split = ItemSplit(dev=True, avoid=frozenset(tuple(item["story"]) for items in evaluation.values() for item in items))
    items = {name: GENERATORS[name](world, random.Random(f"{name}:{seed}:dev"), n, split) for name in TINY_TASKS}
    return _write_task_files(items, tasks_dir, final_tasks_dir)


def eval_items(world: World, seed: int, n: int) -> dict[str, list[dict]]:
    """Every task's `n` evaluation items, as `write_tasks` writes them."""
    return {name: GENERATORS[name](world, random.Random(f"{name}:{seed}"), n) for name in TINY_TASKS}


def _write_task_files(items_by_task: dict[str, list[dict]], tasks_dir: Path, final_tasks_dir: Path) -> dict[str, int]:
    tasks_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, items in items_by_task.items():
        lines = "".join(json.dumps(item) + "\n" for item in items)
        (tasks_dir / f"{name}.jsonl").write_text(lines, encoding="utf-8")
        config = task_config(name, final_tasks_dir / f"{name}.jsonl")
        (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        counts[name] = len(items)
    return counts
