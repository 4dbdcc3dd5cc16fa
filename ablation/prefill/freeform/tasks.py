"""Free-form task sets: the tiny world's, the original study's JSON file, and a hub translation set.

Every source becomes the same list of items (id, task, prompt, reference, metrics, stop), written
once to ``freeform/tasks.jsonl`` so every (model, mask) generation reads identical prompts.

- ``tiny``: tasks whose answer depends on reading the prompt in order. ``tiny_route_retell``
  tells a walk along a fresh route, then starts retelling it leg by leg; the reference is the rest
  of the retelling (BLEU: the places must come in order). ``tiny_move_answer`` says a character
  moved from one city or job to another and asks for the current one (exact match).
- ``real``: the original's file ``{"translation_en_de": [{id, source, reference}],
  "code_understanding": [{id, instruction, reference}]}``, plus, optionally, a translation set read
  through ``datasets`` (rows ``{"translation": {"en": ..., "de": ...}}``, e.g. ``wmt/wmt19``).
  Translation is scored by chrF and BLEU, code understanding by token F1.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ablation.io import atomic_write_jsonl, read_jsonl

log = logging.getLogger(__name__)

# the prompts of the real task set (prompt_style 'ours'); the tiny world's prompts are corpus-style text
TRANSLATION_PROMPT = "Translate the following English text into German. Reply with the German translation only.\n\n{source}"
CODE_PROMPT = "{instruction}"
# prompt_style 'original': the original's system turn per task, then the item's bare source or instruction
ORIGINAL_SYSTEM = {
    "translation_en_de": "You are a professional translator. Translate the following English text to German. "
                         "Output only the German translation, nothing else.",
    "code_understanding": "You are an expert Python programmer. Answer the following question concisely and accurately.",
}  # fmt: skip
PROMPT_STYLES = ("ours", "original")

TASK_METRICS = {
    "translation_en_de": ("chrf", "bleu"),
    "code_understanding": ("token_f1",),
    "tiny_route_retell": ("bleu", "token_f1"),
    "tiny_move_answer": ("exact_match", "token_f1"),
}
# fields each task of the original's file must have, besides the reference
ORIGINAL_FIELDS = {"translation_en_de": ("id", "source", "reference"), "code_understanding": ("id", "instruction", "reference")}
TINY_STOP = ("\n",)  # tiny documents put one question or retelling per line
TINY_EXAMPLES = 30  # per tiny task when the config says null, as many as the original's per task


@dataclass(frozen=True)
class FreeformItem:
    id: str
    task: str
    prompt: str
    reference: str
    metrics: tuple[str, ...]  # the first is the task's headline metric
    stop: tuple[str, ...] = ()  # the response is cut at the first of these strings
    system: str = ""  # a system turn before the prompt (prompt_style 'original'); none when empty


def tiny_items(seed: int, examples_per_task: int) -> list[FreeformItem]:
    """The tiny world's free-form tasks, seeded apart from its multiple-choice tasks."""
    from ablation.world import moves, routes
    from ablation.world.world import make_world

    world = make_world(seed)
    rng = random.Random(f"freeform:{seed}")
    items = []
    for number in range(examples_per_task):
        person, route = routes.sample_route(rng, rng.choice(routes.LENGTHS), world, heldout=True)
        retold = [f"{route[1]}."] + [f"{routes.leg_lead(person, route[i])} {route[i + 1]}." for i in range(1, len(route) - 1)]
        items.append(
            FreeformItem(
                id=f"route-{number:04d}",
                task="tiny_route_retell",
                prompt=f"{routes.telling(rng, person, route)} {routes.leg_lead(person, route[0])}",
                reference=" ".join(retold),
                metrics=TASK_METRICS["tiny_route_retell"],
                stop=TINY_STOP,
            )
        )
    for number in range(examples_per_task):
        move = moves.sample_move(world, rng, rng.choice(moves.KINDS), heldout=True)
        context = moves.statement(move, rng.randrange(len(moves.TRANSITIONS[move.kind])))
        items.append(
            FreeformItem(
                id=f"move-{number:04d}",
                task="tiny_move_answer",
                prompt=f"{context} {moves.question(move, hop=False)}\nAnswer:",
                reference=moves.answer(world, move, move.new, hop=False),
                metrics=TASK_METRICS["tiny_move_answer"],
                stop=TINY_STOP,
            )
        )
    return items


def _field(record, task: str, index: int, name: str, source: str) -> str:
    value = record.get(name) if isinstance(record, dict) else None
    if not isinstance(value, (str, int)) or str(value).strip() == "":
        raise ValueError(f"{source}: {task}[{index}] has no non-empty '{name}' (a {task} item needs {', '.join(ORIGINAL_FIELDS[task])})")
    return str(value)


def real_prompt(task: str, text: str, prompt_style: str) -> tuple[str, str]:
    """(system turn, prompt) of a real item whose source or instruction is ``text``: our one-turn
    prompt (``ours``), or the original's system turn and the bare text (``original``)."""
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"config key 'freeform.prompt_style': {prompt_style!r} is not allowed; allowed: {', '.join(PROMPT_STYLES)}")
    if prompt_style == "original":
        return ORIGINAL_SYSTEM[task], text
    template = TRANSLATION_PROMPT if task == "translation_en_de" else CODE_PROMPT
    return "", template.format(source=text, instruction=text)


def original_items(path: str | Path, limit: int | None = None, prompt_style: str = "ours") -> list[FreeformItem]:
    """Items of the original study's JSON file; a missing field stops with the item named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"free-form task file {str(path)!r} does not exist (config key 'freeform.tasks_file')")
    data = json.loads(path.read_text())
    unknown = sorted(set(data) - set(ORIGINAL_FIELDS)) if isinstance(data, dict) else None
    if unknown is None or unknown:
        raise ValueError(f"{path}: expected an object with keys {', '.join(ORIGINAL_FIELDS)}; got {unknown if unknown else type(data).__name__}")
    items = []
    for task, records in data.items():
        if not isinstance(records, list):
            raise ValueError(f"{path}: '{task}' must be a list of items")
        for index, record in enumerate(records[:limit]):
            fields = {name: _field(record, task, index, name, str(path)) for name in ORIGINAL_FIELDS[task]}
            system, prompt = real_prompt(task, fields["source" if task == "translation_en_de" else "instruction"], prompt_style)
            items.append(FreeformItem(f"{task}-{fields['id']}", task, prompt, fields["reference"], TASK_METRICS[task], system=system))
    return items


def hub_translation_items(settings: dict, prompt_style: str = "ours") -> list[FreeformItem]:
    """English→German items from a ``datasets`` translation set (``path``, ``name``, ``split``, ``limit``, ``data_files``)."""
    from datasets import load_dataset

    dataset = load_dataset(settings["path"], settings.get("name"), split=settings["split"], data_files=settings.get("data_files"))
    items = []
    for index, row in enumerate(dataset.select(range(min(settings["limit"], len(dataset))))):
        pair = row.get("translation") or {}
        if not pair.get("en") or not pair.get("de"):
            raise ValueError(f"translation set {settings['path']!r} row {index} has no 'translation' with non-empty 'en' and 'de'")
        system, prompt = real_prompt("translation_en_de", pair["en"], prompt_style)
        items.append(FreeformItem(f"hub-{index:04d}", "translation_en_de", prompt, pair["de"], TASK_METRICS["translation_en_de"], system=system))
    return items


def build_items(freeform: dict, world_seed: int) -> list[FreeformItem]:
    """The configured task set (config section ``freeform``)."""
    if freeform["task_set"] == "tiny":
        items = tiny_items(world_seed, freeform["examples_per_task"] or TINY_EXAMPLES)
    else:
        style = freeform["prompt_style"]
        items = original_items(freeform["tasks_file"], freeform["examples_per_task"], style) if freeform["tasks_file"] else []
        if freeform["hub_translation"]:
            items += hub_translation_items(freeform["hub_translation"], style)
    if not items:
        raise ValueError("the free-form task set is empty: set 'freeform.tasks_file' and/or 'freeform.hub_translation'")
    duplicated = sorted({item.id for item in items if sum(other.id == item.id for other in items) > 1})
    if duplicated:
        raise ValueError(f"free-form item ids must be unique; repeated: {', '.join(duplicated[:5])}")
    return items


def write_items(items: list[FreeformItem], path: str | Path) -> None:
    atomic_write_jsonl(path, [asdict(item) for item in items])


def read_items(path: str | Path) -> list[FreeformItem]:
    """The items ``write_items`` wrote (a file written before items had a system turn reads as without one)."""
    return [FreeformItem(**{**row, "metrics": tuple(row["metrics"]), "stop": tuple(row["stop"])}) for row in read_jsonl(path)]


def build_task_set(freeform: dict, world_seed: int, output: str | Path) -> int:
    """Write the free-form items of ``freeform`` (the config section) to ``output``; returns how many."""
    items = build_items(freeform, world_seed)
    write_items(items, output)
    log.info("wrote %d free-form items", len(items))
    return len(items)
