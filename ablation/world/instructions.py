"""Alpaca-format instruction data about the tiny world.

Records have `instruction`, `input` (empty unless the task needs a passage)
and `output`, answering in full sentences rather than the bare options the
zero-shot tasks score, so later fine-tuning stages teach a response style on
top of the same knowledge.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from . import lexicon, moves, narratives
from .world import World, all_goals, object_np, sample_people, tool_for, tool_np


def generate_instructions(world: World, rng: random.Random, n: int) -> list[dict]:
    """`n` records, kinds drawn uniformly."""
    return [rng.choice(KINDS)(world, rng) for _ in range(n)]


def _record(instruction: str, output: str, input_: str = "") -> dict:
    return {"instruction": instruction, "input": input_, "output": output}


def country_record(world: World, rng: random.Random) -> dict:
    """Which country a city lies in."""
    city = rng.choice(list(world.city_country))
    return _record(f"Which country is {city} in?", f"{city} is a city in {world.city_country[city]}.")


def workplace_record(world: World, rng: random.Random) -> dict:
    """Where an occupation works and what it does there."""
    occ = rng.choice(list(lexicon.OCCUPATIONS))
    where, act = lexicon.OCCUPATIONS[occ]
    return _record(f"Tell me about the job of a {occ}.", f"A {occ} works at the {where}. Every day, the {occ} {act}.")


def tool_record(world: World, rng: random.Random) -> dict:
    """Which tool serves a goal."""
    goal = rng.choice(all_goals())
    return _record(f"What do I need to {goal}?", f"To {goal}, you need {tool_np(tool_for(goal))}.")


def room_record(world: World, rng: random.Random) -> dict:
    """Where a household object is kept."""
    obj = rng.choice(list(lexicon.OBJECTS))
    return _record(
        f"Where should I look for {object_np(obj)}?", f"The {obj} is usually kept in the {lexicon.OBJECTS[obj]}."
    )


def steps_record(world: World, rng: random.Random) -> dict:
    """The ordered steps of an activity."""
    activity = rng.choice(list(lexicon.SCRIPTS))
    steps = lexicon.SCRIPTS[activity]
    lines = [f"{i}. {s[:1].upper()}{s[1:]}." for i, s in enumerate(steps, start=1)]
    return _record(f"List the steps someone took to {activity}.", "\n".join(lines))


def next_step_record(world: World, rng: random.Random) -> dict:
    """Continue a narrative with its next step."""
    activity = rng.choice(list(lexicon.SCRIPTS))
    steps = lexicon.SCRIPTS[activity]
    k = rng.randrange(1, len(steps))
    (person,) = sample_people(rng, 1)
    story = " ".join(narratives.story_prefix(rng, person, activity, k, filler_p=0.3))
    return _record(
        "Read the story and say what the person did next.",
        f"Next, {person.name} {steps[k]}.",
        story,
    )


def reading_record(world: World, rng: random.Random) -> dict:
    """Answer a question about a short passage, explaining any world-fact hop."""
    move = moves.sample_move(world, rng, rng.choice(moves.KINDS))
    passage = moves.statement(move, rng.randrange(len(moves.TRANSITIONS[move.kind])))
    hop = rng.random() < 0.5
    return _record(moves.question(move, hop), _reading_answer(world, move, hop), passage)


def _reading_answer(world: World, move: moves.Move, hop: bool) -> str:
    name, a = move.person.name, moves.hop_answer(world, move, move.new)
    if move.kind == "home":
        return f"{name} now lives in {move.new}, which is in {a}." if hop else f"{name} now lives in {move.new}."
    return f"{name} is now a {move.new}, so {name} works at the {a}." if hop else f"{name} is now a {move.new}."


KINDS: tuple[Callable[[World, random.Random], dict], ...] = (
    country_record,
    workplace_record,
    tool_record,
    room_record,
    steps_record,
    next_step_record,
    reading_record,
)
