"""Script narratives: a character working through the steps of an activity.

Shared by the corpus (full stories) and tiny_hellaswag (a story cut before a
step, to be completed).  Neutral filler sentences sit between steps so the
cue that identifies the activity is several sentences back.
"""

from __future__ import annotations

import random

from . import lexicon
from .world import Person

INTROS = (
    "{n} decided to {a}.",
    "One morning, {n} wanted to {a}.",
    "{n} had a free afternoon and chose to {a}.",
    "It was time for {n} to {a}.",
)
ENDINGS = (
    "In the end, {n} was very pleased.",
    "{n} smiled at the result.",
    "It had been a good day for {n}.",
)


def step_lead(rng: random.Random, index: int, person: Person) -> str:
    """Words that open the sentence of step `index` (0-based)."""
    connector = "First" if index == 0 else rng.choice(lexicon.STEP_CONNECTORS)
    return f"{connector}, {person.subj}"


def story_prefix(rng: random.Random, person: Person, activity: str, n_steps: int, filler_p: float) -> list[str]:
    """Intro plus the first `n_steps` steps, with fillers mixed in."""
    sentences = [rng.choice(INTROS).format(n=person.name, a=activity)]
    for i, step in enumerate(lexicon.SCRIPTS[activity][:n_steps]):
        if rng.random() < filler_p:
            sentences.append(rng.choice(lexicon.FILLERS))
        sentences.append(f"{step_lead(rng, i, person)} {step}.")
    return sentences


def full_story(rng: random.Random, person: Person, activity: str) -> str:
    """A complete narrative of the activity, as one paragraph."""
    n_steps = len(lexicon.SCRIPTS[activity])
    sentences = story_prefix(rng, person, activity, n_steps, filler_p=0.3)
    sentences.append(rng.choice(ENDINGS).format(n=person.name))
    return " ".join(sentences)
