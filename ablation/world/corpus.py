"""Synthetic pre-training corpus of the tiny world.

Each document is one short paragraph of a single genre: declarative facts in
varied templates (both "goal -> tool" and "tool -> goal" orders, so knowledge
can be recalled either way), script narratives, walks along fresh routes,
stories about a character's change of city or job, and quizzes in the "question\\nAnswer: ..." format the
tasks use.
Quizzes never use a fact's held-out question template, and no document tells
a walk or a character's move held out for evaluation (see `World`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from . import lexicon, moves, narratives, routes
from .world import (
    GOAL_QUESTIONS,
    KNOWLEDGE_QUESTIONS,
    World,
    all_goals,
    capitalize,
    goal_question,
    knowledge_question,
    object_np,
    sample_people,
    solution,
    tool_for,
    tool_np,
)

# Between documents of a corpus whose documents contain blank lines (the bridge's prompts): two
# blank lines, which no document contains; pre-training packs each document as its own sequence.
DOCUMENT_SEPARATOR = "\n\n\n"
GEOGRAPHY = (
    "{c} is a city in {k}.",
    "The city of {c} lies in {k}.",
    "{k} is home to the city of {c}.",
    "{n} grew up in {c}, a city in {k}.",
    "Many people visit {c} when they travel to {k}.",
    "If you live in {c}, you live in {k}.",
)
OCCUPATION = (
    "A {o} works at the {w}.",
    "At the {w}, the {o} {act}.",
    "{n} is a {o}, so {p} goes to the {w} every day.",
    "Every day, the {o} {act}.",
    "{n} works as a {o} and {act}.",
    "You can find the {o} at the {w}.",
)
TOOL = (
    "To {g}, you need {t}.",
    "{n} used {t} to {g}.",
    "If you want to {g}, use {t}.",
    "{T} is handy when you need to {g}.",
    "{n} wanted to {g}, so {p} grabbed {t}.",
    "With {t}, you can {g}.",
)
HOUSEHOLD = (
    "The {o} is kept in the {r}.",
    "{n} found the {o} in the {r}.",
    "In the {r}, there is {x}.",
    "{n} carried the {o} back to the {r}.",
    "The {o} belongs in the {r}.",
)


def generate_corpus(world: World, rng: random.Random, n_documents: int) -> list[str]:
    """`n_documents` paragraphs, genres drawn by fixed weights."""
    genres, weights = zip(*GENRES)
    return [rng.choices(genres, weights)[0](world, rng) for _ in range(n_documents)]


def geography_doc(world: World, rng: random.Random) -> str:
    """Facts about which country each city lies in."""
    if rng.random() < 0.2:
        country = rng.choice(lexicon.COUNTRIES)
        cities = world.cities_in(country)
        rng.shuffle(cities)
        return f"{country} has four cities: {', '.join(cities[:-1])} and {cities[-1]}."
    out = []
    for city in rng.sample(list(world.city_country), rng.randint(3, 5)):
        (person,) = sample_people(rng, 1)
        out.append(rng.choice(GEOGRAPHY).format(c=city, k=world.city_country[city], n=person.name))
    return " ".join(out)


def occupation_doc(world: World, rng: random.Random) -> str:
    """Facts about where each occupation works and what it does."""
    out = []
    for occ in rng.sample(list(lexicon.OCCUPATIONS), rng.randint(3, 5)):
        (person,) = sample_people(rng, 1)
        where, act = lexicon.OCCUPATIONS[occ]
        out.append(rng.choice(OCCUPATION).format(o=occ, w=where, act=act, n=person.name, p=person.subj))
    return " ".join(out)


def tool_doc(world: World, rng: random.Random) -> str:
    """Facts about which tool serves which goal."""
    out = []
    for goal in rng.sample(all_goals(), rng.randint(3, 5)):
        (person,) = sample_people(rng, 1)
        np_ = tool_np(tool_for(goal))
        out.append(rng.choice(TOOL).format(g=goal, t=np_, T=capitalize(np_), n=person.name, p=person.subj))
    return " ".join(out)


def household_doc(world: World, rng: random.Random) -> str:
    """Facts about the room each household object is kept in."""
    out = []
    for obj in rng.sample(list(lexicon.OBJECTS), rng.randint(3, 5)):
        (person,) = sample_people(rng, 1)
        out.append(rng.choice(HOUSEHOLD).format(o=obj, r=lexicon.OBJECTS[obj], x=object_np(obj), n=person.name))
    return " ".join(out)


def script_doc(world: World, rng: random.Random) -> str:
    """A complete activity narrative."""
    (person,) = sample_people(rng, 1)
    return narratives.full_story(rng, person, rng.choice(list(lexicon.SCRIPTS)))


def move_doc(world: World, rng: random.Random) -> str:
    """A character's change of city or job, then sentences that use it."""
    move = moves.sample_move(world, rng, rng.choice(moves.KINDS))
    out = [moves.statement(move, rng.randrange(len(moves.TRANSITIONS[move.kind])))]
    if rng.random() < 0.5:
        out.append(moves.follow_up(world, rng, move, hop=rng.random() < 0.5))
    for blank in rng.sample(range(len(moves.BLANKS[move.kind])), rng.randint(1, 2)):
        lead, value, rest = moves.blank_sentence(move, blank)
        out.append(f"{lead}{value} {rest}")
    return " ".join(out)


def route_doc(world: World, rng: random.Random) -> str:
    """A walk along a fresh route, then some of its legs retold in order."""
    person, route = routes.sample_route(rng, rng.choice(routes.LENGTHS), world)
    legs = routes.legs(rng, person, route, rng.randint(1, len(route) - 1))
    return " ".join([routes.telling(rng, person, route), *legs])


def quiz_doc(world: World, rng: random.Random) -> str:
    """Question/answer pairs in the evaluation format (never a held-out one)."""
    pairs = [rng.choice(QUIZ_ITEMS)(world, rng) for _ in range(rng.randint(2, 4))]
    # Single newlines only: blank lines separate documents in corpus.txt.
    return "\n".join(f"{q}\nAnswer: {a}" for q, a in pairs)


def knowledge_pair(world: World, rng: random.Random) -> tuple[str, str]:
    """A single-hop fact asked with one of its training templates."""
    fact = rng.choice(world.facts())
    held = world.heldout_knowledge[(fact.kind, fact.subject)]
    template = rng.choice([i for i in range(len(KNOWLEDGE_QUESTIONS[fact.kind])) if i != held])
    return knowledge_question(fact, template), fact.answer


def goal_pair(world: World, rng: random.Random) -> tuple[str, str]:
    """A goal prompt asked with one of its training templates."""
    goal = rng.choice(all_goals())
    template = rng.choice([i for i in range(len(GOAL_QUESTIONS)) if i != world.heldout_goal[goal]])
    return goal_question(goal, template), solution(tool_for(goal), goal)


def move_pair(world: World, rng: random.Random) -> tuple[str, str]:
    """A change of city or job, then a direct or hop question about it."""
    move = moves.sample_move(world, rng, rng.choice(moves.KINDS))
    hop = rng.random() < 0.5
    context = moves.statement(move, rng.randrange(len(moves.TRANSITIONS[move.kind])))
    return f"{context} {moves.question(move, hop)}", moves.answer(world, move, move.new, hop)


# Reading in-context facts is the slowest skill to learn, so it gets half of the quiz pairs.
QUIZ_ITEMS: tuple[Callable[[World, random.Random], tuple[str, str]], ...] = (
    knowledge_pair,
    goal_pair,
    move_pair,
    move_pair,
)

GENRES: tuple[tuple[Callable[[World, random.Random], str], float], ...] = (
    (geography_doc, 0.6),
    (occupation_doc, 0.6),
    (tool_doc, 0.7),
    (household_doc, 0.4),
    (script_doc, 0.4),
    (route_doc, 4.0),
    (move_doc, 5.0),
    (quiz_doc, 2.5),
)
