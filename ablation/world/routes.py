"""Walks along a fresh route of places: an in-context copying task.

A character walks past four or five workplaces in a random order, and the
walk is then retold in pieces ("She left the park and walked to the
school.").  The route is drawn afresh per story, so the next place can only
be found by looking the current place up earlier in the context and copying
what followed it - the induction pattern that causal attention supports well.
The distractors are the place that came *before* the current one, the one
two steps after it and a place not on the route: a reader that cannot tell
which side of a place its neighbour was on picks the wrong one.  Evaluation
items walk routes the corpus never tells (`sample_route` with a world).
"""

from __future__ import annotations

import random

from . import lexicon
from .world import Person, World, capitalize, neutral_sentences, sample_people

PLACES = tuple(sorted({where for where, _ in lexicon.OCCUPATIONS.values()}))

OPENINGS = (
    "{n} walked from the {first}",
    "One morning, {n} went from the {first}",
    "{n} started at the {first} and walked",
)
NEXT_DAY = (
    "The next day, {s} took the same way again.",
    "Later that week, {s} walked the same way.",
)

LENGTHS = (4, 5)


def sample_route(
    rng: random.Random,
    length: int,
    world: World | None = None,
    *,
    heldout: bool = False,
    avoid: frozenset[tuple] = frozenset(),
) -> tuple[Person, list[str]]:
    """A fresh character and `length` distinct places in random order.

    With a `world`, the route (its places in order) is drawn from one side of
    the world's split: held-out routes for evaluation items, the others for
    the corpus, so no evaluated route is ever told in training text.  Routes
    whose `story_key` is in `avoid` are never drawn.
    """
    while True:
        (person,) = sample_people(rng, 1)
        route = rng.sample(PLACES, length)
        key = story_key(route)
        if world is None or (world.is_heldout(*key) == heldout and key not in avoid):
            return person, route


def story_key(route: list[str]) -> tuple[str, ...]:
    """What identifies a walk's story in the world's split: its places in order."""
    return ("route", *route)


def telling(rng: random.Random, person: Person, route: list[str]) -> str:
    """The first, complete telling of the walk."""
    head = rng.choice(OPENINGS).format(n=person.name, first=route[0])
    middle = "".join(f" to the {p}, then" for p in route[1:-1])
    return f"{head}{middle} to the {route[-1]}. {rng.choice(NEXT_DAY).format(s=person.subj)}"


def leg_lead(person: Person, place: str) -> str:
    """Words of a retold leg up to the blank place: "She left the park and walked to the"."""
    return f"{capitalize(person.subj)} left the {place} and walked to the"


def legs(rng: random.Random, person: Person, route: list[str], k: int) -> list[str]:
    """`k` retold legs of the walk, in order, starting at a random leg."""
    start = rng.randrange(len(route) - k)
    return [f"{leg_lead(person, route[i])} {route[i + 1]}." for i in range(start, start + k)]


def completion_item(
    rng: random.Random, person: Person, route: list[str], gap: int = 0
) -> tuple[str, str, list[str]]:
    """(context, next place, three wrong places) for a leg of the retold walk.

    `gap` neutral sentences stand between the telling and the retold leg.
    """
    i = rng.randrange(1, len(route) - 2)
    context = " ".join([telling(rng, person, route), *neutral_sentences(rng, gap), leg_lead(person, route[i])])
    off_route = rng.choice([p for p in PLACES if p not in route])
    return context, route[i + 1], [route[i - 1], route[i + 2], off_route]
