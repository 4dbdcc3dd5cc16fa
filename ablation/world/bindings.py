"""In-context bindings: fresh facts about story characters stated in the text.

A binding ("Anna lives in Redcliff") is never memorisable because names are
drawn afresh for every story, so using one means retrieving it from earlier in
the context among distractor bindings of other characters.  Questions come in
two depths: *direct* (recall the bound value: Redcliff) and *hop* (apply a
memorised world fact to it: Redcliff's country).  These order-sensitive
retrievals are what a causal model must read carefully, and what breaks when
the prefill attention pattern changes; bag-of-words cues cannot solve them
because every distractor value appears in the context too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon
from .world import Person, World, all_goals, tool_for, tool_np

KINDS = ("home", "job", "need")

STATEMENTS = {
    "home": ("{n} lives in {v}.", "{n} moved to {v} last year.", "{n} has a small house in {v}."),
    "job": ("{n} is a {v}.", "{n} works as a {v}.", "{n} got a job as a {v}."),
    "need": ("{n} wants to {v}.", "{n} needs to {v}.", "{n} is trying to {v}."),
}

# Clause forms used to join two statements into one sentence (winogrande style).
CLAUSES = {
    "home": "{n} lives in {v}",
    "job": "{n} is a {v}",
    "need": "{n} wants to {v}",
}

# (direct question, hop question) per kind.
QUESTIONS = {
    "home": ("Where does {n} live?", "In which country does {n} live?"),
    "job": ("What is the job of {n}?", "Where does {n} work?"),
    "need": ("What does {n} want to do?", "Which tool does {n} need?"),
}

# Consequence sentences are "<lead><name> <rest>": everything after the name is
# a continuation shared by every candidate name (winogrande partial scoring).
# "{v}" is the bound value (direct), "{a}"/"{act}" its world-fact image (hop).
CONSEQUENCES = {
    "home": (("walks around {v} every evening.", "loves living in {v}."),
             ("has a passport from {a}.", "pays taxes in {a}.")),
    "job": (("is proud to be a {v}.", "has been a {v} for years."),
            ("goes to the {a}.", "{act}.")),
    "need": (("is getting ready to {v}.", "will soon {v}."),
             ("went to get {a}.", "borrowed {a} from a friend.")),
}
LEADS = {
    "home": ("", "Of course, ", "As a result, "),
    "job": ("Every day, ", "In the morning, ", "At work, "),
    "need": ("So ", "That is why ", "Today, "),
}


@dataclass(frozen=True)
class Binding:
    """One character bound to a value of some kind."""

    kind: str
    person: Person
    value: str


def sample_bindings(world: World, rng: random.Random, kind: str, people: list[Person]) -> list[Binding]:
    """Bind each person to a distinct value whose hop answer is also distinct."""
    pool = _values(world, kind)
    rng.shuffle(pool)
    chosen: list[str] = []
    seen_answers: set[str] = set()
    for v in pool:
        a = hop_answer(world, Binding(kind, people[0], v))
        if a not in seen_answers:
            chosen.append(v)
            seen_answers.add(a)
        if len(chosen) == len(people):
            break
    return [Binding(kind, p, v) for p, v in zip(people, chosen)]


def _values(world: World, kind: str) -> list[str]:
    if kind == "home":
        return list(world.city_country)
    if kind == "job":
        return list(lexicon.OCCUPATIONS)
    return all_goals()


def hop_answer(world: World, b: Binding) -> str:
    """The memorised world fact applied to the bound value."""
    if b.kind == "home":
        return world.city_country[b.value]
    if b.kind == "job":
        return lexicon.OCCUPATIONS[b.value][0]
    return tool_for(b.value)


def answer(world: World, b: Binding, hop: bool) -> str:
    """Answer to the direct (bound value) or hop question about `b`."""
    return hop_answer(world, b) if hop else b.value


def answer_options(world: World, kind: str, hop: bool) -> tuple[str, ...]:
    """All possible answers of a question of `kind` and depth."""
    if not hop:
        return tuple(_values(world, kind))
    if kind == "home":
        return lexicon.COUNTRIES
    if kind == "job":
        return tuple(w for w, _ in lexicon.OCCUPATIONS.values())
    return tuple(lexicon.TOOLS)


def statement(b: Binding, template: int) -> str:
    """State the binding as a sentence."""
    return STATEMENTS[b.kind][template].format(n=b.person.name, v=b.value)


def random_statements(rng: random.Random, bs: list[Binding]) -> str:
    """State all bindings, each with a random template."""
    return " ".join(statement(b, rng.randrange(len(STATEMENTS[b.kind]))) for b in bs)


def joined_statement(a: Binding, b: Binding) -> str:
    """State two bindings of the same kind in one sentence."""
    first = CLAUSES[a.kind].format(n=a.person.name, v=a.value)
    second = CLAUSES[b.kind].format(n=b.person.name, v=b.value)
    return f"{first} and {second}."


def question(b: Binding, hop: bool) -> str:
    """Ask for the bound value (direct) or its world-fact image (hop)."""
    return QUESTIONS[b.kind][hop].format(n=b.person.name)


def consequence(world: World, rng: random.Random, b: Binding, hop: bool) -> tuple[str, str]:
    """(lead before the name, rest after the name) of a random consequence sentence."""
    a = hop_answer(world, b)
    if b.kind == "need":
        a = tool_np(a)
    act = lexicon.OCCUPATIONS[b.value][1] if b.kind == "job" else ""
    rest = rng.choice(CONSEQUENCES[b.kind][hop]).format(v=b.value, a=a, act=act)
    return rng.choice(LEADS[b.kind]), rest
