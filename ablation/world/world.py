"""The seeded tiny world: its facts, question templates and phrasing helpers.

A `World` binds the fixed lexicon together from a seed (cities to countries)
and decides, for every fact, which question template is held out for
evaluation.  The corpus only ever asks a fact with its other templates, so an
evaluation question is never a verbatim copy of a training line; the model
has to transfer the knowledge it read in declarative and other question forms.
(tiny_piqa asks its goals with the held-out template; no current task asks a
bare knowledge fact, whose held-out templates the corpus still leaves out.)
The seed also splits every story combination the tasks draw (a character's
move, a route) into held-out ones, which only evaluation items use, and the
rest, which the corpus and the instruction set use: no evaluation item's story
is ever told in training text.
Corpus, tasks and instructions all render text through the helpers here, so the
three stay consistent.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from . import lexicon

# Question templates per knowledge kind; "{s}" is the subject.  The answer is
# the bare entity, as in ARC's short answer options.
KNOWLEDGE_QUESTIONS = {
    "country": (
        "In which country is {s}?",
        "{s} is a city in which country?",
        "Which country does the city of {s} belong to?",
    ),
    "workplace": (
        "Where does a {s} work?",
        "At which place does a {s} spend the working day?",
        "Where would you find a {s} at work?",
    ),
    "room": (
        "In which room is the {s} kept?",
        "Where in the house would you find the {s}?",
        "Which room of the house has the {s}?",
    ),
}

# PIQA-style goal prompts; "{g}" is the goal verb phrase.
GOAL_QUESTIONS = (
    "How can you {g}?",
    "What is the best way to {g}?",
    "You want to {g}. What should you do?",
)

# Share of story combinations (see `World.is_heldout`) kept for evaluation items.
HELDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class Fact:
    """A memorisable single-hop fact: `subject` has `answer` among `options`."""

    kind: str
    subject: str
    answer: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    """A story character; pronouns keep generated sentences grammatical."""

    name: str
    subj: str  # "she" / "he"
    poss: str  # "her" / "his"


@dataclass(frozen=True)
class World:
    """Seed-dependent bindings plus the held-out template of every question."""

    city_country: dict[str, str]
    heldout_knowledge: dict[tuple[str, str], int]
    heldout_goal: dict[str, int]
    seed: int = 0

    def is_heldout(self, *key: object) -> bool:
        """Whether a story combination (e.g. "move", kind, name, old, new) belongs to evaluation.

        A fixed, seeded split of every possible combination: evaluation items
        draw only held-out ones, the corpus and instructions only the others.
        """
        digest = hashlib.blake2b(repr((self.seed, key)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < HELDOUT_FRACTION * 2**64

    def facts(self) -> list[Fact]:
        """All single-hop facts, in a fixed order."""
        out = [Fact("country", c, k, lexicon.COUNTRIES) for c, k in self.city_country.items()]
        workplaces = tuple(w for w, _ in lexicon.OCCUPATIONS.values())
        out += [Fact("workplace", o, w, workplaces) for o, (w, _) in lexicon.OCCUPATIONS.items()]
        out += [Fact("room", o, r, lexicon.ROOMS) for o, r in lexicon.OBJECTS.items()]
        return out

    def cities_in(self, country: str) -> list[str]:
        """Cities of `country` in lexicon order."""
        return [c for c, k in self.city_country.items() if k == country]


def make_world(seed: int) -> World:
    """Bind the lexicon from `seed`; same seed, same world."""
    rng = random.Random(f"world:{seed}")
    cities = list(lexicon.CITIES)
    rng.shuffle(cities)
    per_country = len(cities) // len(lexicon.COUNTRIES)
    assignment = {c: lexicon.COUNTRIES[i // per_country] for i, c in enumerate(cities)}
    city_country = {c: assignment[c] for c in lexicon.CITIES}
    heldout_knowledge = {}
    for kind, subjects in (
        ("country", lexicon.CITIES),
        ("workplace", tuple(lexicon.OCCUPATIONS)),
        ("room", tuple(lexicon.OBJECTS)),
    ):
        for s in subjects:
            heldout_knowledge[(kind, s)] = rng.randrange(len(KNOWLEDGE_QUESTIONS[kind]))
    heldout_goal = {g: rng.randrange(len(GOAL_QUESTIONS)) for g in all_goals()}
    return World(city_country, heldout_knowledge, heldout_goal, seed)


def all_goals() -> list[str]:
    """Every goal phrase, in lexicon order."""
    return [g for goals in lexicon.TOOLS.values() for g in goals]


def tool_for(goal: str) -> str:
    """The tool that serves `goal`."""
    return next(t for t, goals in lexicon.TOOLS.items() if goal in goals)


def knowledge_question(fact: Fact, template: int) -> str:
    """Render `fact` as a question with the given template index."""
    return KNOWLEDGE_QUESTIONS[fact.kind][template].format(s=fact.subject)


def goal_question(goal: str, template: int) -> str:
    """Render a PIQA-style goal prompt."""
    return GOAL_QUESTIONS[template].format(g=goal)


def solution(tool: str, goal: str) -> str:
    """A PIQA-style solution sentence naming `tool`."""
    return f"Use {tool_np(tool)} to {goal}."


def tool_np(tool: str) -> str:
    """Noun phrase with the right determiner for a tool."""
    if tool == "scissors":
        return "a pair of scissors"
    if tool == "glue":
        return "some glue"
    return indefinite(tool)


def object_np(obj: str) -> str:
    """Noun phrase with the right determiner for a household object."""
    if obj in ("soap", "shampoo"):
        return f"some {obj}"
    return indefinite(obj)


def indefinite(noun: str) -> str:
    """Prefix `noun` with "a" or "an"."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def capitalize(text: str) -> str:
    """Upper-case the first character only (keeps proper nouns intact)."""
    return text[:1].upper() + text[1:]


def neutral_sentences(rng: random.Random, k: int) -> list[str]:
    """`k` distinct neutral story sentences (they say nothing about the world)."""
    return rng.sample(lexicon.FILLERS, k)


def sample_people(rng: random.Random, n: int) -> list[Person]:
    """`n` distinct characters with matching pronouns."""
    names = rng.sample(lexicon.FEMALE_NAMES + lexicon.MALE_NAMES, n)
    return [
        Person(nm, "she", "her") if nm in lexicon.FEMALE_NAMES else Person(nm, "he", "his")
        for nm in names
    ]
