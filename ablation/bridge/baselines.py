"""Source-alone and target-alone accuracy: one model reading the evaluation prompts as text.

Their own DAG nodes, computed once per (model, dataset, eval set) and shared by every run that
names the model; the original regenerated both at every evaluation step of every run.

Each also answers the questions in the bridge's ``soft_only`` layout with the question's own
text in the soft tokens' place (``prompts.soft_slot_prompt``): what the model gives, as a target,
to a translator that handed it the question word for word. A bridged accuracy far below target
alone but near this one is the target's reading of that layout, not the translator, at fault.

And each measures, per hidden-state layer, how much of the prompts' tokens (and of their numbers)
the model's states still carry (``legibility``): what the model, as a source, can hand a translator.
"""

from __future__ import annotations

import time
from pathlib import Path

from ablation.bridge.answers import INVALID, score
from ablation.bridge.data import eval_examples, load_rows, prompt_task, scoring_task
from ablation.bridge.frozen import load_frozen
from ablation.bridge.generation import Hygiene, generate_from_text, opening_ids
from ablation.bridge.legibility import layer_legibility
from ablation.bridge.prompts import soft_slot_prompt, task_prompt
from ablation.io import atomic_write_json, atomic_write_jsonl
from ablation.provenance import provenance

BASELINE_HYGIENE = Hygiene(repetition_penalty=1.0, stop_after_answer=True)  # plain greedy, as the original


def evaluate_alone(
    *,
    model_name: str,
    model: dict,
    dataset: str,
    dataset_source: dict,
    embedded_data_dir: str | Path | None,
    eval_settings: dict,
    metrics_path: str | Path,
    samples_path: str | Path,
    config: dict,
    seed: int,
    device: str,
) -> dict:
    """Generate greedy answers from ``model`` alone; write per-question samples, then the metrics."""
    started = time.perf_counter()
    frozen = load_frozen(model_name, model["id"], model["revision"], dtype=model["dtype"], device=device)
    train_rows = load_rows(dataset, dataset_source, dataset_source["train_split"], embedded_data_dir)
    eval_rows = load_rows(dataset, dataset_source, dataset_source["eval_split"], embedded_data_dir)
    examples = eval_examples(dataset, eval_rows, train_rows, eval_settings, dataset_source)
    shown_as, scored_as = prompt_task(dataset, dataset_source), scoring_task(dataset, dataset_source)
    settings = {"dataset": shown_as, "hygiene": BASELINE_HYGIENE, "max_new_tokens": eval_settings["max_new_tokens"],
                "batch_size": eval_settings["batch_size"]}  # fmt: skip
    prompts = [example.prompt for example in examples]
    generations = generate_from_text(frozen.model, frozen.tokenizer, prompts, **settings)
    opening = frozen.tokenizer.decode(opening_ids(frozen.tokenizer))
    slot_prompts = [soft_slot_prompt(shown_as, eval_rows[example.index], opening) for example in examples]
    slot_generations = generate_from_text(frozen.model, frozen.tokenizer, slot_prompts, add_special_tokens=False, **settings)
    samples = []
    for example, generation, slot in zip(examples, generations, slot_generations):
        scored = score(scored_as, generation.text, example.gold)
        slot_scored = score(scored_as, slot.text, example.gold)
        samples.append({
            "index": example.index, "question": example.question, "prompt": example.prompt,
            "gold_full_text": example.gold_text, "gold_extracted": example.gold,
            "full": generation.text, **scored,
            "input_tokens": generation.input_tokens, "output_tokens": generation.output_tokens,
            "soft_slot_full": slot.text, "soft_slot_extracted": slot_scored["extracted"],
            "soft_slot_correct": slot_scored["correct"],
        })  # fmt: skip
    atomic_write_jsonl(samples_path, samples)
    metrics = {
        "model": model_name,
        "dataset": dataset,
        "prompts": shown_as,
        "scoring": scored_as,
        "samples": len(samples),
        "accuracy": sum(sample["correct"] for sample in samples) / len(samples),
        "invalid": sum(sample["extracted"] == INVALID for sample in samples),
        "soft_slot_accuracy": sum(sample["soft_slot_correct"] for sample in samples) / len(samples),
        "mean_input_tokens": sum(sample["input_tokens"] for sample in samples) / len(samples),
        "mean_output_tokens": sum(sample["output_tokens"] for sample in samples) / len(samples),
        "eval": eval_settings,
    }
    metrics["legibility"] = layer_legibility(
        frozen, [task_prompt(shown_as, row) for row in train_rows], prompts, max_tokens=frozen.model.config.max_position_embeddings,
    )  # fmt: skip
    if scored_as == "hotpotqa":
        metrics["f1"] = sum(sample["f1"] for sample in samples) / len(samples)
    metrics["provenance"] = provenance(
        model_id=model["id"], revision=model["revision"], mask=None, config=config, seed=seed,
        wall_seconds=time.perf_counter() - started,
    )  # fmt: skip
    atomic_write_json(metrics_path, metrics)
    return metrics
