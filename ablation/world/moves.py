"""In-context facts with a distractor: a character's old and new city or job.

"Anna moved from Redcliff to Dunmore" states two facts of the same kind about
one fresh character; only the function words around each value say which is
current.  Questions ask for the current value directly (Dunmore) or through a
memorised world fact (Dunmore's country), with the old value's answer as the
distractor.  Templates put the current value first or last equally often, so
neither recency nor position alone answers them: the model must read the
context in order.  (Characters are drawn afresh per story, so none of this can
be memorised, and evaluation items only use combinations of character, old and
new value that the corpus never tells: `World.is_heldout`.)  Neutral sentences
may stand between the change and the question about it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon
from .world import Person, World, sample_people

KINDS = ("home", "job")

# (template, True when the current value is mentioned first)
TRANSITIONS = {
    "home": (
        ("{n} moved from {old} to {new}.", False),
        ("{n} left {old} and moved to {new}.", False),
        ("Before moving to {new}, {n} lived in {old}.", True),
        ("{n} moved to {new} after living in {old}.", True),
    ),
    "job": (
        ("{n} changed jobs from {old} to {new}.", False),
        ("{n} switched from {old} to {new} last year.", False),
        ("{n} switched to {new} from {old}.", True),
        ("Before switching to {new}, {n} worked as a {old}.", True),
    ),
}

# (direct question, hop question) about the current value.
QUESTIONS = {
    "home": ("Where does {n} live now?", "In which country does {n} live now?"),
    "job": ("What is the job of {n} now?", "Where does {n} work now?"),
}

# Follow-up sentences for the corpus: (direct, hop) forms about the current value.
FOLLOW_UPS = {
    "home": (
        ("So {n} lives in {new} now.", "{n} is happy in {new}."),
        ("Now {n} pays taxes in {hop}.", "These days {n} lives in {hop}."),
    ),
    "job": (
        ("So {n} is a {new} now.", "These days {n} works as a {new}."),
        ("Now {n} goes to the {hop} every day.", "These days {n} {act}."),
    ),
}

# Winogrande twins "<lead><value> <rest>": the blank is the old or the new value.
# Twins share the lead and differ in the word right after the blank ("is" or
# "was"), so the deciding step is one short read: is this value the current one?
BLANKS = {
    "home": (
        ("So ", "is {poss} home now.", "new"),
        ("So ", "was {poss} home before.", "old"),
        ("In the end, ", "is where {s} lives.", "new"),
        ("In the end, ", "was where {s} lived.", "old"),
    ),
    "job": (
        ("So being a ", "is {poss} job now.", "new"),
        ("So being a ", "was {poss} job before.", "old"),
        ("In the end, being a ", "is what {s} does.", "new"),
        ("In the end, being a ", "was what {s} did.", "old"),
    ),
}


@dataclass(frozen=True)
class Move:
    """A character whose city or job changed from `old` to `new`."""

    kind: str
    person: Person
    old: str
    new: str


def sample_move(
    world: World, rng: random.Random, kind: str, *, heldout: bool = False, avoid: frozenset[tuple] = frozenset()
) -> Move:
    """A fresh character with two values whose hop answers differ too.

    `heldout` picks the side of the world's split (`World.is_heldout`): True for
    evaluation items, False for the corpus and instructions, so no evaluation
    item's move is ever told in training text.  Moves whose `story_key` is in
    `avoid` are never drawn (development items avoid the evaluation items' moves).
    """
    pool = list(world.city_country) if kind == "home" else list(lexicon.OCCUPATIONS)
    while True:
        (person,) = sample_people(rng, 1)
        old, new = rng.sample(pool, 2)
        move = Move(kind, person, old, new)
        key = story_key(move)
        if hop_answer(world, move, old) != hop_answer(world, move, new) and (
            world.is_heldout(*key) == heldout and key not in avoid
        ):
            return move


def story_key(move: Move) -> tuple[str, ...]:
    """What identifies a move's story in the world's split: kind, character and both values."""
    return ("move", move.kind, move.person.name, move.old, move.new)


def hop_answer(world: World, move: Move, value: str) -> str:
    """The memorised world fact applied to one of the move's values."""
    if move.kind == "home":
        return world.city_country[value]
    return lexicon.OCCUPATIONS[value][0]


def answer(world: World, move: Move, value: str, hop: bool) -> str:
    """The answer a question about `value` expects, directly or via the hop."""
    return hop_answer(world, move, value) if hop else value


def answer_options(world: World, kind: str, hop: bool) -> tuple[str, ...]:
    """Every possible answer to a question of `kind` and depth."""
    if kind == "home":
        return lexicon.COUNTRIES if hop else tuple(world.city_country)
    if hop:
        return tuple(w for w, _ in lexicon.OCCUPATIONS.values())
    return tuple(lexicon.OCCUPATIONS)


def statement(move: Move, template: int) -> str:
    """The sentence stating the change."""
    text, _ = TRANSITIONS[move.kind][template]
    return text.format(n=move.person.name, old=move.old, new=move.new)


def question(move: Move, hop: bool) -> str:
    """Ask for the current value, directly or through the hop."""
    return QUESTIONS[move.kind][hop].format(n=move.person.name)


def follow_up(world: World, rng: random.Random, move: Move, hop: bool) -> str:
    """A corpus sentence that uses the current value, directly or via the hop."""
    act = lexicon.OCCUPATIONS[move.new][1] if move.kind == "job" else ""
    return rng.choice(FOLLOW_UPS[move.kind][hop]).format(
        n=move.person.name, new=move.new, hop=hop_answer(world, move, move.new), act=act
    )


def blank_sentence(move: Move, index: int) -> tuple[str, str, str]:
    """(lead, value that fills the blank, rest) of a winogrande twin sentence."""
    lead, rest, which = BLANKS[move.kind][index]
    value = move.new if which == "new" else move.old
    return lead, value, rest.format(s=move.person.subj, poss=move.person.poss)
