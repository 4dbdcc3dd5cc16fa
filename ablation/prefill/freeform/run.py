"""Free-form generation under a mask, the stage's library entry point (the task set: ``tasks``; scoring: ``scores``).

Generation saves each finished batch to a partial file beside its output, claimed (ablation.resume)
with a hash of the model and how it was loaded, mask, task set, prompt format and decoding settings:
a job that fails or is killed keeps what it generated, and a rerun with the same settings generates
only the rest (any other rerun deletes the partial file and starts afresh). ``generations.jsonl``
itself appears atomically once every item has a response.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from ablation.prefill.freeform.generation import DecodingSettings, check_generation_mode, generate
from ablation.prefill.freeform.tasks import FreeformItem, read_items
from ablation.io import atomic_write_jsonl, read_jsonl
from ablation.models import load_causal_lm, load_tokenizer, resolve_device
from ablation.provenance import provenance
from ablation.io import file_sha256, settings_sha256
from ablation.resume import claim_checkpoint

log = logging.getLogger(__name__)
PROMPT_FORMATS = ("auto", "chat", "plain")


def uses_chat_template(tokenizer, prompt_format: str) -> bool:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"config key 'freeform.prompt_format': {prompt_format!r} is not allowed; allowed: {', '.join(PROMPT_FORMATS)}")
    if prompt_format == "chat" and not tokenizer.chat_template:
        raise ValueError("config key 'freeform.prompt_format' is 'chat' but the model's tokenizer has no chat template")
    return prompt_format == "chat" or (prompt_format == "auto" and bool(tokenizer.chat_template))


def encode_prompt(tokenizer, prompt: str, chat: bool, system: str = "") -> list[int]:
    """The prompt's token ids: a system turn (when ``system`` is set) and one user turn with the
    generation prompt (chat), or the text with the BOS, after the system text and a blank line."""
    if chat:
        turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        encoded = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(encoded["input_ids"])
    return tokenizer(f"{system}\n\n{prompt}" if system else prompt)["input_ids"]


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """The response up to the first stop string, without surrounding whitespace."""
    text = text.lstrip()
    cuts = [text.find(marker) for marker in stop if marker in text]
    return (text[: min(cuts)] if cuts else text).strip()


def eos_token_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    ids = {token for token in [*configured, tokenizer.eos_token_id] if token is not None}
    if not ids:
        raise ValueError("the model and its tokenizer define no EOS token; generation could not stop")
    return sorted(ids)


def settings_key(model_identity: dict, loading: dict, mask: str, tasks_sha256: str, prompt_format: str, decoding: DecodingSettings) -> str:
    """What makes a saved row reusable: same model weights loaded the same way (``loading``: dtype, FP8 handling,
    attention implementation), mask, task set, prompt format and decoding."""
    return settings_sha256([model_identity, loading, mask, tasks_sha256, prompt_format, asdict(decoding)])


def _append_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())


def partial_path(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


def generate_freeform(
    *,
    model_id: str,
    mask: str,
    tasks_path: str | Path,
    output: str | Path,
    config: dict,
    revision: str | None = None,
) -> list[dict]:
    """Generate a response to every item of ``tasks_path`` under ``mask`` and write ``generations.jsonl``."""
    started = time.perf_counter()
    check_generation_mode(mask)
    output = Path(output)
    freeform, model_settings = config["freeform"], config["model"]
    decoding = DecodingSettings(
        max_new_tokens=freeform["max_new_tokens"],
        do_sample=freeform["do_sample"],
        temperature=freeform["temperature"],
        top_p=freeform["top_p"],
        seed=config["seed"],
    )
    items = read_items(tasks_path)
    model = load_causal_lm(
        model_id,
        revision=revision,
        dtype=model_settings["dtype"],
        attn_implementation=model_settings["attn_implementation"],
        device=resolve_device(model_settings["device"]),
        quantized_weights=model_settings["eval_weights"],
    )
    tokenizer = load_tokenizer(model_id, revision)
    chat = uses_chat_template(tokenizer, freeform["prompt_format"])
    stamp = provenance(model_id=model_id, revision=revision, mask=mask, config=config, seed=config["seed"], wall_seconds=0.0, weights=model.weights_provenance)
    loading = {"weights": model.weights_provenance, "attn_implementation": model_settings["attn_implementation"]}
    key = settings_key(stamp["model"], loading, mask, file_sha256(tasks_path), "chat" if chat else "plain", decoding)

    partial = partial_path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    claim = claim_checkpoint(partial, key, job=f"free-form generation {model_id} under {mask}")
    saved = {row["id"]: row for row in (read_jsonl(partial) if claim.resumable and partial.exists() else [])}
    if saved:
        claim.resumed(f"{len(saved)} rows")
    stamp["resume"] = claim.summary()
    pending = [item for item in items if item.id not in saved]
    log.info("%s under %s: %d items, %d already generated, %s prompts", model_id, mask, len(items), len(items) - len(pending), "chat" if chat else "plain")

    def save_batch(indices: list[int], generations) -> None:
        rows = [response_row(pending[index], generation, tokenizer, mask, key) for index, generation in zip(indices, generations)]
        _append_rows(partial, rows)
        saved.update((row["id"], row) for row in rows)

    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_token_ids(model, tokenizer)[0]
    generate(
        model,
        [encode_prompt(tokenizer, item.prompt, chat, item.system) for item in pending],
        mode=mask,
        settings=decoding,
        eos_token_ids=eos_token_ids(model, tokenizer),
        pad_token_id=pad_token_id,
        batch_size=freeform["batch_size"],
        on_batch=save_batch,
    )
    stamp["wall_seconds"] = round(time.perf_counter() - started, 3)
    rows = [{**saved[item.id], "provenance": stamp} for item in items]
    atomic_write_jsonl(output, rows)
    claim.finish()
    empty = sum(not row["response"] for row in rows)
    log.info("wrote %d generations (%d empty) in %.1f s", len(rows), empty, stamp["wall_seconds"])
    return rows


def response_row(item: FreeformItem, generation, tokenizer, mask: str, key: str) -> dict:
    text = tokenizer.decode(list(generation.tokens), skip_special_tokens=True)
    return {
        "id": item.id,
        "task": item.task,
        "prompt": item.prompt,
        "reference": item.reference,
        "metrics": list(item.metrics),
        "response": cut_at_stop(text, item.stop),
        "tokens": len(generation.tokens),
        "stopped_on_eos": generation.finished,
        "seconds": round(generation.batch_seconds, 4),  # the wall time of the whole batch
        "batch_rows": generation.batch_rows,
        "mask": mask,
        "settings_sha256": key,
    }
