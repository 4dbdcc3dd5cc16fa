"""GSM8K-shaped arithmetic word problems about the tiny world's people and things.

Rows are `{"question", "answer"}` like the hub's `gsm8k` (config `main`): the
answer is a short worked solution whose last line is `#### n`.  A problem is a
starting count changed by one or two steps (buy, find, get vs give away, lose,
sell, break), or two people's counts added together.  Numbers stay small
(operands 1-9, every intermediate and final count 0-20) so a tiny LM can learn
the sums from a few thousand examples; the verb of each step alone says whether
it adds or subtracts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon
from .world import Person, sample_people

MAX_OPERAND = 9
MAX_COUNT = 20

# Countable things: the tools and household objects whose plural is a plain count noun.
THINGS = tuple(t for t in lexicon.TOOLS if t not in ("scissors", "glue")) + tuple(
    o for o in lexicon.OBJECTS if o not in ("soap", "shampoo", "bathtub", "fridge", "stove", "wardrobe", "sofa")
)

# (sign, clause): "{s}" subject pronoun, "{n}" the count, "{x}" the thing noun, "{o}" another person.
STEPS = (
    (+1, "{s} buys {n} more {x}"),
    (+1, "{s} finds {n} more {x}"),
    (+1, "{o} gives {p} {n} more {x}"),
    (+1, "{s} gets {n} more {x} from {o}"),
    (-1, "{s} gives {n} {x} to {o}"),
    (-1, "{s} loses {n} {x}"),
    (-1, "{s} sells {n} {x}"),
    (-1, "{s} breaks {n} {x}"),
)
STARTS = (
    "{n} has {k} {x}.",
    "{n} owns {k} {x}.",
    "There are {k} {x} in the house of {n}.",
)
QUESTIONS = (
    "How many {x} does {n} have now?",
    "How many {x} does {n} have after that?",
    "How many {x} does {n} have in the end?",
)
TOGETHER_QUESTIONS = (
    "How many {x} do they have together?",
    "How many {x} do {n} and {o} have in all?",
)


@dataclass(frozen=True)
class Problem:
    """A starting count and signed steps; `counts` are the running totals."""

    start: int
    steps: tuple[int, ...]  # signed operands

    @property
    def counts(self) -> tuple[int, ...]:
        out = [self.start]
        for step in self.steps:
            out.append(out[-1] + step)
        return tuple(out)


def plural(noun: str) -> str:
    """Regular English plural of a (possibly two-word) noun."""
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def noun_for(count: int, thing: str) -> str:
    """The noun as `count` of them is written: "lamp" for 1, else "lamps"."""
    return thing if count == 1 else plural(thing)


def count_np(count: int, thing: str) -> str:
    """"1 lamp" / "3 lamps"."""
    return f"{count} {noun_for(count, thing)}"


def sample_problem(rng: random.Random, n_steps: int) -> Problem:
    """Operands in 1..9 whose running totals all stay within 0..20."""
    while True:
        start = rng.randint(1, MAX_OPERAND)
        steps = tuple(rng.choice((1, -1)) * rng.randint(1, MAX_OPERAND) for _ in range(n_steps))
        if all(0 <= c <= MAX_COUNT for c in Problem(start, steps).counts):
            return Problem(start, steps)


def equation(before: int, step: int) -> str:
    """"3 + 5 = 8" / "8 - 2 = 6"."""
    return f"{before} {'+' if step > 0 else '-'} {abs(step)} = {before + step}."


def chain_row(rng: random.Random, person: Person, other: Person, thing: str, problem: Problem) -> dict:
    """One person's count changed step by step."""
    sentences = [rng.choice(STARTS).format(n=person.name, k=problem.start, x=noun_for(problem.start, thing))]
    for i, step in enumerate(problem.steps):
        template = rng.choice([t for sign, t in STEPS if sign == (1 if step > 0 else -1)])
        clause = template.format(
            s=person.subj,
            n=abs(step),
            x=noun_for(abs(step), thing),
            o=other.name,
            p="her" if person.subj == "she" else "him",
        )
        sentences.append(f"Then {clause}." if i else f"{clause[:1].upper()}{clause[1:]}.")
    sentences.append(rng.choice(QUESTIONS).format(x=plural(thing), n=person.name))
    counts = problem.counts
    work = [f"{person.name} starts with {count_np(problem.start, thing)}."]
    work += [equation(before, step) for before, step in zip(counts, problem.steps)]
    return {"question": " ".join(sentences), "answer": f"{' '.join(work)}\n#### {counts[-1]}"}


def together_row(rng: random.Random, person: Person, other: Person, thing: str) -> dict:
    """Two people's counts added."""
    first, second = rng.randint(1, MAX_OPERAND), rng.randint(1, MAX_OPERAND)
    question = (
        f"{person.name} has {count_np(first, thing)} and {other.name} has {count_np(second, thing)}. "
        f"{rng.choice(TOGETHER_QUESTIONS).format(x=plural(thing), n=person.name, o=other.name)}"
    )
    return {"question": question, "answer": f"{equation(first, second)}\n#### {first + second}"}


def arithmetic_row(rng: random.Random) -> dict:
    """One problem: a one-step chain, a two-step chain or a sum of two people's counts."""
    person, other = sample_people(rng, 2)
    thing = rng.choice(THINGS)
    kind = rng.choices(("one", "two", "together"), (2, 3, 1))[0]
    if kind == "together":
        return together_row(rng, person, other, thing)
    return chain_row(rng, person, other, thing, sample_problem(rng, 1 if kind == "one" else 2))
