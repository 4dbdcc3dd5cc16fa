"""The frozen source's hidden states, computed once per key and read by every run that shares it.

A translator step needs the source's states at ``source_layer`` for its questions; they depend
only on the frozen source (model, revision, dtype), the layer, the prompts and their truncation,
never on the translator. ``build_source_states`` writes them as safetensors shards (one tensor of
[tokens, width] per prompt, named by the prompt's SHA-256) with ``index.json`` written last; a run
opens them memory-mapped (``SourceStates``) instead of running the source. The size is estimated
from the token count before anything is written: past ``max_bytes`` the index records the
fallback, and runs compute the states on the fly and say so.

Directory (``results/bridge/source_states/<key>/``, ``<key>`` from ``settings.source_state_key``)::

    index.json            the key, dtype, width, which shard holds each prompt, the estimate; provenance
    shard_00000.safetensors ...
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ablation.bridge.batches import tokenize_source
from ablation.bridge.frozen import FrozenLM, hidden_states
from ablation.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
SHARD_BYTES = 512 * 2**20  # a shard holds about this much, so no one file gets huge
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def prompt_name(prompt: str) -> str:
    """The tensor name of a prompt's states: its SHA-256, so a lookup can never return another prompt's states."""
    return hashlib.sha256(prompt.encode()).hexdigest()


def stored_dtype(model_dtype: str, precision: str, device: str) -> str:
    """What the states are kept in: the run's precision (bf16 autocast on GPU), else the source's weight dtype."""
    return "bfloat16" if precision == "bf16" and device != "cpu" else model_dtype


def token_lengths(tokenizer, prompts: list[str], max_tokens: int) -> list[int]:
    """Each prompt's token count after truncation to ``max_tokens``."""
    return [len(ids) for ids in tokenizer(prompts, truncation=True, max_length=max_tokens)["input_ids"]]


def estimate_bytes(lengths: list[int], width: int, dtype: str) -> int:
    """Bytes the states take: tokens after truncation × the source's width × the element size."""
    return sum(lengths) * width * DTYPES[dtype].itemsize


def over_cap(estimate: int, max_bytes: int) -> str | None:
    """Why a cache of ``estimate`` bytes is not built, or None when it fits."""
    if estimate <= max_bytes:
        return None
    return (f"estimated {estimate / 1e9:.3f} GB exceeds the cap of {max_bytes / 1e9:.3f} GB "
            "(bridge.source_state_cache.max_gb): runs compute the states on the fly")  # fmt: skip


def _publish(out_dir: Path, partial: Path, index: dict, started: float, stamp: dict | None) -> dict:
    """Write the index last, then move the finished cache into place."""
    index["build_seconds"] = round(time.perf_counter() - started, 3)
    index["provenance"] = stamp
    atomic_write_json(partial / INDEX_FILE, index)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(partial, out_dir)
    return index


def write_fallback(out_dir: str | Path, *, key: dict, dtype: str, width: int, prompts: int, estimate: int, max_bytes: int, stamp: dict | None = None) -> dict:
    """The index of a cache not built (past its cap), so runs know to compute on the fly; no shards."""
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    reason = over_cap(estimate, max_bytes)
    log.warning("source-state cache %s: %s", out_dir.name, reason)
    index = {"key": key, "dtype": dtype, "width": width, "prompts": prompts, "estimated_bytes": estimate, "max_bytes": max_bytes,
             "cached": False, "reason": reason}  # fmt: skip
    return _publish(out_dir, partial, index, time.perf_counter(), stamp)


def build_source_states(
    out_dir: str | Path,
    source: FrozenLM,
    prompts: list[str],
    *,
    key: dict,
    layer: int,
    max_tokens: int,
    dtype: str,
    max_bytes: int,
    batch_size: int,
    stamp: dict | None = None,
) -> dict:
    """Write the states of ``prompts`` (unique, any order) into ``out_dir``; return the index.

    Shards go to ``out_dir``'s ``.partial`` sibling, which replaces ``out_dir`` once the index is
    written, so a killed build leaves no ``index.json`` (nothing that looks finished) and a rerun
    starts clean."""
    out_dir = Path(out_dir)
    started = time.perf_counter()
    prompts = list(dict.fromkeys(prompts))
    lengths = token_lengths(source.tokenizer, prompts, max_tokens)
    estimate = estimate_bytes(lengths, source.width, dtype)
    if over_cap(estimate, max_bytes):
        return write_fallback(out_dir, key=key, dtype=dtype, width=source.width, prompts=len(prompts), estimate=estimate,
                              max_bytes=max_bytes, stamp=stamp)  # fmt: skip
    index = {"key": key, "dtype": dtype, "width": source.width, "prompts": len(prompts), "estimated_bytes": estimate, "max_bytes": max_bytes}
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    index.update(cached=True, shards={}, locations={}, stored_bytes=0)
    pending: dict[str, torch.Tensor] = {}

    def flush() -> None:
        name = f"shard_{len(index['shards']):05d}.safetensors"
        save_file(pending, str(partial / name))
        index["shards"][name] = len(pending)
        index["locations"].update(dict.fromkeys(pending, name))
        pending.clear()

    pending_bytes = 0
    by_length = [prompt for _, prompt in sorted(zip(lengths, prompts), key=lambda pair: pair[0])]  # little padding
    for start in range(0, len(by_length), batch_size):
        chunk = by_length[start : start + batch_size]
        batch = tokenize_source(source.tokenizer, chunk, max_tokens).to(source.model.device)
        states = hidden_states(source, batch, layer).to(DTYPES[dtype])
        for row, (prompt, length) in enumerate(zip(chunk, batch["attention_mask"].sum(1).tolist())):
            pending[prompt_name(prompt)] = states[row, :length].cpu().contiguous()  # right padded: the real tokens lead
            pending_bytes += length * source.width * DTYPES[dtype].itemsize
        if pending_bytes >= SHARD_BYTES:
            index["stored_bytes"] += pending_bytes
            pending_bytes = 0
            flush()
    if pending:
        index["stored_bytes"] += pending_bytes
        flush()
    return _publish(out_dir, partial, index, started, stamp)


class SourceStates:
    """A finished cache opened for reading: the padded states and mask of a batch of prompts, memory-mapped."""

    def __init__(self, index: dict, directory: Path, *, expected_key: dict):
        """``index``: the cache's ``index.json``, already read by ``open_source_states``."""
        self.index, self.directory = index, directory
        if index["key"] != expected_key:
            raise ValueError(f"source-state cache {directory / INDEX_FILE} was built for {index['key']}, not this run's {expected_key}")
        self.files = {name: safe_open(str(self.directory / name), framework="pt") for name in self.index["shards"]}

    def batch(self, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """[B, S, D] states (zeros past each prompt's end, like the right-padded forward's masked
        positions never read) and the [B, S] mask; None when a prompt is not cached."""
        names = [prompt_name(prompt) for prompt in prompts]
        if any(name not in self.index["locations"] for name in names):
            return None
        rows = [self.files[self.index["locations"][name]].get_tensor(name) for name in names]
        lengths = torch.tensor([row.size(0) for row in rows])
        states = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = torch.arange(states.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        return states.to(device), mask.to(device)


def open_source_states(index_path: str | Path | None, expected_key: dict) -> SourceStates | None:
    """The run's cache, or None (no cache configured, or the build fell back past its size cap, which is logged)."""
    if index_path is None:
        return None
    index = read_json(index_path)
    if not index["cached"]:
        log.warning("source-state cache not used: %s", index["reason"])
        return None
    log.info("reading the source's states from %s (%d prompts, %.1f MB)", Path(index_path).parent, index["prompts"], index["stored_bytes"] / 1e6)
    return SourceStates(index, Path(index_path).parent, expected_key=expected_key)


def source_state_prompts(settings: dict, dataset_source: dict, embedded_data_dir, eval_settings: dict) -> list[str]:
    """Every prompt a run's source reads: its training prompts, then its eval prompts."""
    from ablation.bridge.data import eval_examples, few_shots, load_rows, prompt_task
    from ablation.bridge.prompts import training_prompt

    dataset = settings["dataset"]
    shown_as = prompt_task(dataset, dataset_source)
    train_rows = load_rows(dataset, dataset_source, dataset_source["train_split"], embedded_data_dir)
    eval_rows = load_rows(dataset, dataset_source, dataset_source["eval_split"], embedded_data_dir)
    shots = few_shots(shown_as, train_rows, eval_settings)
    train = [training_prompt(shown_as, row, settings["train_prompt"], shots) for row in train_rows]
    return train + [example.prompt for example in eval_examples(dataset, eval_rows, train_rows, eval_settings, dataset_source)]


def build_run_source_states(
    index_path: str | Path, *, key: dict, settings: dict, model: dict, dataset_source: dict, embedded_data_dir,
    eval_settings: dict, max_gb: float, device: str, config: dict,
) -> dict:
    """The cache job: load the source, then ``build_source_states`` for every prompt of ``settings``' runs."""
    from transformers import AutoConfig

    from ablation.bridge.frozen import load_frozen
    from ablation.bridge.generation import prepare_tokenizer
    from ablation.models import load_tokenizer
    from ablation.provenance import provenance

    started = time.perf_counter()
    prompts = list(dict.fromkeys(source_state_prompts(settings, dataset_source, embedded_data_dir, eval_settings)))
    dtype = stored_dtype(model["dtype"], settings["precision"], device)
    stamp = provenance(model_id=model["id"], revision=model["revision"], mask=None, config=config, seed=settings["seed"], wall_seconds=0.0)
    # estimated from the tokenizer and the config's width, so a cache past its cap never loads the model
    tokenizer = prepare_tokenizer(load_tokenizer(model["id"], revision=model["revision"]))
    width = AutoConfig.from_pretrained(model["id"], revision=model["revision"]).get_text_config().hidden_size
    estimate = estimate_bytes(token_lengths(tokenizer, prompts, settings["max_prompt_tokens"]), width, dtype)
    max_bytes = int(max_gb * 1e9)
    if over_cap(estimate, max_bytes):
        return write_fallback(Path(index_path).parent, key=key, dtype=dtype, width=width, prompts=len(prompts), estimate=estimate,
                              max_bytes=max_bytes, stamp=stamp)  # fmt: skip
    source = load_frozen(settings["source"], model["id"], model["revision"], dtype=model["dtype"], device=device)
    with torch.autocast(device_type=source.model.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        index = build_source_states(
            Path(index_path).parent, source, prompts, key=key, layer=settings["source_layer"], max_tokens=settings["max_prompt_tokens"],
            dtype=dtype, max_bytes=max_bytes, batch_size=eval_settings["batch_size"], stamp=stamp,
        )  # fmt: skip
    log.info("source-state cache %s: %d prompts, estimated %.1f MB, %s in %.1f s", Path(index_path).parent.name, index["prompts"],
             index["estimated_bytes"] / 1e6, "cached" if index["cached"] else "not cached", time.perf_counter() - started)  # fmt: skip
    return index
