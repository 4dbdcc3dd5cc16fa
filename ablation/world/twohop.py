"""HotpotQA-shaped two-hop questions over the tiny world, with distractor paragraphs.

Rows follow the hub's `hotpot_qa` (config `distractor`) fields: `id`, `question`,
`answer`, `type`, `level`, `supporting_facts` {title, sent_id} and `context`
{title, sentences}.  Every row has four titled paragraphs: two fresh characters
(where each lives, what each does) and, for each of them, the paragraph about
their city or their job.  "In which country does Anna live?" needs Anna's
paragraph (Anna lives in Dunmore) and then Dunmore's (Dunmore is a city in
Norland); the other character and their city are the distractors, chosen with
a different answer so that only following the right chain answers.  The second
hop is a world fact (a city's country, a job's workplace), so the paragraphs
agree with the world corpus.  As in HotpotQA, a paragraph's later sentences
start with a space, and the answer is a short entity.
"""

from __future__ import annotations

import random

from . import lexicon
from .world import Person, World, capitalize, sample_people

# Two-hop questions per kind; "{n}" is the character the chain starts from.
QUESTIONS = {
    "country": (
        "In which country does {n} live?",
        "{n} lives in a city of which country?",
        "Which country is the home of {n}?",
    ),
    "workplace": (
        "Where does {n} work?",
        "At which place does {n} spend the working day?",
        "Where would you find {n} at work?",
    ),
}
# Sentences of a character's paragraph, by the kind of question they support.
PERSON_SENTENCES = {
    "country": ("{n} lives in {c}.", "{n} has a home in {c}."),
    "workplace": ("{n} works as a {o}.", "{n} has a job as a {o}."),
}
# The first hop asked on its own, decomposition style; it answers with the bridge entity.
FIRST_HOP_QUESTIONS = {"country": "In which city does {n} live?", "workplace": "What is the job of {n}?"}
CITY_SENTENCES = ("{c} is a city in {k}.", "The city of {c} lies in {k}.")
JOB_SENTENCES = ("A {o} works at the {w}.", "You can find a {o} at the {w}.")


def person_paragraph(rng: random.Random, person: Person, city: str, occupation: str) -> tuple[list[str], dict[str, int]]:
    """A character's sentences (home and job, in random order) and which sentence states which."""
    kinds = ["country", "workplace"]
    rng.shuffle(kinds)
    values = {"country": {"c": city}, "workplace": {"o": occupation}}
    sentences = []
    for i, kind in enumerate(kinds):
        text = rng.choice(PERSON_SENTENCES[kind]).format(n=person.name if i == 0 else capitalize(person.subj), **values[kind])
        sentences.append(text if i == 0 else f" {text}")
    return sentences, {kind: i for i, kind in enumerate(kinds)}


def bridge_paragraph(rng: random.Random, world: World, kind: str, entity: str) -> tuple[str, list[str]]:
    """The titled paragraph that maps the bridge entity (a city or a job) to the answer."""
    if kind == "country":
        return entity, [rng.choice(CITY_SENTENCES).format(c=entity, k=world.city_country[entity])]
    workplace, activity = lexicon.OCCUPATIONS[entity]
    sentences = [rng.choice(JOB_SENTENCES).format(o=entity, w=workplace), f" Every day, the {entity} {activity}."]
    return capitalize(entity), sentences


def answer_of(world: World, kind: str, entity: str) -> str:
    """The second hop: a city's country or a job's workplace."""
    return world.city_country[entity] if kind == "country" else lexicon.OCCUPATIONS[entity][0]


def bridge_entities(world: World, rng: random.Random, kind: str) -> tuple[str, str]:
    """The asked character's city or job, and the distractor's, whose answers differ."""
    pool = list(world.city_country) if kind == "country" else list(lexicon.OCCUPATIONS)
    while True:
        entity, distractor = rng.sample(pool, 2)
        if answer_of(world, kind, entity) != answer_of(world, kind, distractor):
            return entity, distractor


def twohop_row(world: World, rng: random.Random, row_id: str) -> dict:
    """One bridge question, two supporting and two distractor paragraphs in random order."""
    kind = rng.choice(tuple(QUESTIONS))
    person, other = sample_people(rng, 2)
    entity, distractor = bridge_entities(world, rng, kind)
    paragraphs = []
    for who, bridge in ((person, entity), (other, distractor)):
        # The hop the question does not use is filler, drawn freely.
        home = bridge if kind == "country" else rng.choice(list(world.city_country))
        job = bridge if kind == "workplace" else rng.choice(list(lexicon.OCCUPATIONS))
        sentences, positions = person_paragraph(rng, who, home, job)
        if who is person:
            sent_id = positions[kind]
        paragraphs += [(who.name, sentences), bridge_paragraph(rng, world, kind, bridge)]
    bridge_title = paragraphs[1][0]
    rng.shuffle(paragraphs)
    titles = [title for title, _ in paragraphs]
    # "easy" when the chain reads forwards (the character's paragraph first), else "medium".
    level = "easy" if titles.index(person.name) < titles.index(bridge_title) else "medium"
    return {
        "id": row_id,
        "question": rng.choice(QUESTIONS[kind]).format(n=person.name),
        "answer": answer_of(world, kind, entity),
        "type": "bridge",
        "level": level,
        "supporting_facts": {"title": [person.name, bridge_title], "sent_id": [sent_id, 0]},
        "context": {"title": titles, "sentences": [sentences for _, sentences in paragraphs]},
    }


def first_hop(row: dict) -> dict:
    """The row's first sub-question (the asked character's city or job) on the same paragraphs."""
    person, bridge_title = row["supporting_facts"]["title"]
    kind = "country" if bridge_title in lexicon.CITIES else "workplace"
    entity = bridge_title if kind == "country" else bridge_title.lower()
    return {**row, "question": FIRST_HOP_QUESTIONS[kind].format(n=person), "answer": entity}
