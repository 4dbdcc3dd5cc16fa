"""Frozen models' outputs a run reads at every step, computed once per key and read by every run that shares it.

Source states: a translator step needs the source's states at ``source_layer`` for its
questions; they depend only on the frozen source (model, revision, dtype), the layer, the prompts
and their truncation, never on the translator. ``build_source_states`` writes them as safetensors
shards (one tensor of [tokens, width] per prompt, named by the prompt's SHA-256) with ``index.json``
written last; a run opens them memory-mapped (``SourceStates``) instead of running the source.

KL baselines: the KL compares the bridged answer with the frozen target reading the answer after
its baseline lead (``kl_baseline``); ``build_kl_baselines`` stores the target's logits over the
whole vocabulary at the first ``kl_tokens`` answer positions of every training row, as the forward
gave them ([positions, vocab] per row, named by the SHA-256 of lead and answer), read by
``KLBaselines`` and log-softmaxed as in the step. Exact, not top-k: at 7B scale a row is 20 × 32k–128k × 2 bytes (1.3–5 MB), and a
cache past the cap is simply not built.

Either size is estimated from the token count before anything is written: past ``max_bytes`` the
index records the fallback, and runs compute on the fly and say so.

Directory (``results/bridge/{source_states,kl_baselines}/<key>/``, ``<key>`` from ``settings.source_state_key``
or ``settings.kl_baseline_key``)::

    index.json            the key, dtype, width (vocabulary for KL baselines), which shard holds each row, the estimate; provenance
    shard_00000.safetensors ...
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ablation.bridge.batches import answer_positions, kl_baseline_batch, tokenize_source
from ablation.bridge.cache_plan import cache_bytes, stored_dtype
from ablation.bridge.frozen import FrozenLM, hidden_states
from ablation.bridge.losses import gather_positions
from ablation.io import atomic_write_json, read_json
from ablation.layout import BRIDGE_CACHE_INDEX

log = logging.getLogger(__name__)

INDEX_FILE = BRIDGE_CACHE_INDEX
SHARD_BYTES = 512 * 2**20  # a shard holds about this much, so no one file gets huge
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def prompt_name(prompt: str) -> str:
    """The tensor name of a prompt's states: its SHA-256, so a lookup can never return another prompt's states."""
    return hashlib.sha256(prompt.encode()).hexdigest()


def baseline_name(lead: str, answer: str) -> str:
    """The tensor name of a KL baseline row: the SHA-256 of its lead and answer."""
    return hashlib.sha256(json.dumps([lead, answer]).encode()).hexdigest()


def token_lengths(tokenizer, prompts: list[str], max_tokens: int) -> list[int]:
    """Each prompt's token count after truncation to ``max_tokens``."""
    return [len(ids) for ids in tokenizer(prompts, truncation=True, max_length=max_tokens)["input_ids"]]


def kl_estimate_bytes(answer_lengths: list[int], count: int, vocab: int, dtype: str) -> int:
    """Bytes of the KL baselines: min(kl_tokens, answer tokens) positions per row × the vocabulary × the element size."""
    return cache_bytes(sum(min(count, length) for length in answer_lengths), vocab, dtype)


def estimate_bytes(lengths: list[int], width: int, dtype: str) -> int:
    """Bytes the states take: tokens after truncation × the source's width × the element size."""
    return cache_bytes(sum(lengths), width, dtype)


def over_cap(estimate: int, max_bytes: int) -> str | None:
    """Why a cache of ``estimate`` bytes is not built, or None when it fits."""
    if estimate <= max_bytes:
        return None
    return (f"estimated {estimate / 1e9:.3f} GB exceeds the cap of {max_bytes / 1e9:.3f} GB "
            "(bridge.source_state_cache.max_gb): runs compute them on the fly")  # fmt: skip


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

    def rows():
        by_length = [prompt for _, prompt in sorted(zip(lengths, prompts), key=lambda pair: pair[0])]  # little padding
        for start in range(0, len(by_length), batch_size):
            chunk = by_length[start : start + batch_size]
            batch = tokenize_source(source.tokenizer, chunk, max_tokens).to(source.model.device)
            states = hidden_states(source, batch, layer).to(DTYPES[dtype])
            for row, (prompt, length) in enumerate(zip(chunk, batch["attention_mask"].sum(1).tolist())):
                yield prompt_name(prompt), states[row, :length]  # right padded: the real tokens lead

    return _write_shards(out_dir, rows(), index, started, stamp)


def _write_shards(out_dir: Path, rows, index: dict, started: float, stamp: dict | None) -> dict:
    """Write ``rows`` ((name, tensor) pairs) as safetensors shards into ``out_dir``'s ``.partial``
    sibling, then publish it with ``index`` (the index is written last)."""
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    index.update(cached=True, shards={}, locations={}, stored_bytes=0)
    pending: dict[str, torch.Tensor] = {}
    pending_bytes = 0

    def flush() -> None:
        name = f"shard_{len(index['shards']):05d}.safetensors"
        save_file(pending, str(partial / name))
        index["shards"][name] = len(pending)
        index["locations"].update(dict.fromkeys(pending, name))
        index["stored_bytes"] += pending_bytes
        pending.clear()

    for name, tensor in rows:
        pending[name] = tensor.cpu().contiguous()
        pending_bytes += tensor.numel() * tensor.element_size()
        if pending_bytes >= SHARD_BYTES:
            flush()
            pending_bytes = 0
    if pending:
        flush()
    return _publish(out_dir, partial, index, started, stamp)


def build_kl_baselines(
    out_dir: str | Path,
    target: FrozenLM,
    leads: list[str],
    answers: list[str],
    *,
    key: dict,
    settings: dict,
    dtype: str,
    max_bytes: int,
    batch_size: int,
    stamp: dict | None = None,
) -> dict:
    """Write the target's logits at the first ``kl_tokens`` answer positions after each (lead,
    answer) pair, over the whole vocabulary, into ``out_dir``; return the index.
    Written like ``build_source_states``: shards first, the index last; past ``max_bytes`` only a
    fallback index."""
    out_dir = Path(out_dir)
    started = time.perf_counter()
    pairs = list(dict.fromkeys(zip(leads, answers)))
    vocab = target.model.get_output_embeddings().weight.shape[0]
    full = kl_baseline_batch(target.tokenizer, [lead for lead, _ in pairs], [answer for _, answer in pairs], settings)
    lengths = full.attention.sum(1).tolist()
    estimate = kl_estimate_bytes(full.answer_length.tolist(), settings["kl_tokens"], vocab, dtype)
    if over_cap(estimate, max_bytes):
        return write_fallback(out_dir, key=key, dtype=dtype, width=vocab, prompts=len(pairs), estimate=estimate,
                              max_bytes=max_bytes, stamp=stamp)  # fmt: skip
    index = {"key": key, "dtype": dtype, "width": vocab, "prompts": len(pairs), "estimated_bytes": estimate, "max_bytes": max_bytes}

    def rows():
        by_length = [pair for _, pair in sorted(zip(lengths, pairs), key=lambda item: item[0])]
        device = target.model.device
        for start in range(0, len(by_length), batch_size):
            chunk = by_length[start : start + batch_size]
            batch = kl_baseline_batch(target.tokenizer, [lead for lead, _ in chunk], [answer for _, answer in chunk], settings)
            with torch.no_grad():
                logits = target.model(input_ids=batch.ids.to(device), attention_mask=batch.attention.to(device)).logits
            at_answer, valid = gather_positions(logits, answer_positions(batch, 0, settings["kl_tokens"]).to(device))
            for row, (lead, answer) in enumerate(chunk):
                yield baseline_name(lead, answer), at_answer[row, : int(valid[row].sum())].to(DTYPES[dtype])

    return _write_shards(out_dir, rows(), index, started, stamp)


class CachedTensors:
    """A finished cache opened for reading: its tensors by name, memory-mapped."""

    def __init__(self, index: dict, directory: Path, *, expected_key: dict):
        """``index``: the cache's ``index.json``, already read by ``open_cache``."""
        self.index, self.directory = index, directory
        if index["key"] != expected_key:
            raise ValueError(f"cache {directory / INDEX_FILE} was built for {index['key']}, not this run's {expected_key}")
        self.files = {name: safe_open(str(self.directory / name), framework="pt") for name in self.index["shards"]}

    def covers(self, names: list[str]) -> bool:
        return all(name in self.index["locations"] for name in names)

    def rows(self, names: list[str]) -> list[torch.Tensor] | None:
        """The tensors named ``names``; None when one is not cached."""
        if not self.covers(names):
            return None
        return [self.files[self.index["locations"][name]].get_tensor(name) for name in names]


class SourceStates(CachedTensors):
    """The source's states of prompts: padded batches and their masks."""

    what = "the source's states"

    def covers_prompts(self, prompts: list[str]) -> bool:
        return self.covers([prompt_name(prompt) for prompt in prompts])

    def batch(self, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """[B, S, D] states (zeros past each prompt's end, like the right-padded forward's masked
        positions never read) and the [B, S] mask; None when a prompt is not cached."""
        rows = self.rows([prompt_name(prompt) for prompt in prompts])
        if rows is None:
            return None
        lengths = torch.tensor([row.size(0) for row in rows])
        states = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = torch.arange(states.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        return states.to(device), mask.to(device)


class KLBaselines(CachedTensors):
    """The frozen target's logits at the first answer positions of its KL baseline."""

    what = "the KL baselines"

    def batch(self, leads: list[str], answers: list[str], count: int, device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """[B, count, V] logits (zeros past each answer) and the [B, count] valid mask, what
        ``losses.gather_positions`` gives in the step; None when a row is not cached."""
        rows = self.rows([baseline_name(lead, answer) for lead, answer in zip(leads, answers)])
        if rows is None:
            return None
        logits = torch.zeros(len(rows), count, rows[0].size(-1), dtype=rows[0].dtype)
        valid = torch.zeros(len(rows), count, dtype=torch.bool)
        for b, row in enumerate(rows):
            logits[b, : row.size(0)] = row
            valid[b, : row.size(0)] = True
        return logits.to(device), valid.to(device)


def open_cache(index_path: str | Path | None, expected_key: dict, kind: type[CachedTensors]) -> CachedTensors | None:
    """The run's cache, or None (no cache configured, or the build fell back past its size cap, which is logged)."""
    if index_path is None:
        return None
    index = read_json(index_path)
    if not index["cached"]:
        log.warning("cache of %s not used: %s", kind.what, index["reason"])
        return None
    log.info("reading %s from %s (%d rows, %.1f MB)", kind.what, Path(index_path).parent, index["prompts"], index["stored_bytes"] / 1e6)
    return kind(index, Path(index_path).parent, expected_key=expected_key)


def open_source_states(index_path: str | Path | None, expected_key: dict) -> SourceStates | None:
    return open_cache(index_path, expected_key, SourceStates)


def open_kl_baselines(index_path: str | Path | None, expected_key: dict) -> KLBaselines | None:
    return open_cache(index_path, expected_key, KLBaselines)


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


def kl_baseline_rows(settings: dict, dataset_source: dict, embedded_data_dir, eval_settings: dict) -> tuple[list[str], list[str]]:
    """The leads and answers of every training row's KL baseline."""
    from ablation.bridge.batches import kl_baseline_leads
    from ablation.bridge.data import few_shots, load_rows, prompt_task
    from ablation.bridge.prompts import answer_text, training_prompt

    dataset = settings["dataset"]
    shown_as = prompt_task(dataset, dataset_source)
    rows = load_rows(dataset, dataset_source, dataset_source["train_split"], embedded_data_dir)
    shots = few_shots(shown_as, rows, eval_settings)
    prompts = [training_prompt(shown_as, row, settings["train_prompt"], shots) for row in rows]
    return kl_baseline_leads(prompts, settings), [answer_text(shown_as, row) for row in rows]


def build_run_kl_baselines(
    index_path: str | Path, *, key: dict, settings: dict, model: dict, dataset_source: dict, embedded_data_dir,
    eval_settings: dict, max_gb: float, device: str, config: dict,
) -> dict:
    """The KL-baseline cache job: load the target, then ``build_kl_baselines`` for every training row of ``settings``' runs."""
    from transformers import AutoConfig

    from ablation.bridge.frozen import load_frozen
    from ablation.bridge.generation import prepare_tokenizer
    from ablation.models import load_tokenizer
    from ablation.provenance import provenance

    started = time.perf_counter()
    leads, answers = kl_baseline_rows(settings, dataset_source, embedded_data_dir, eval_settings)
    dtype = stored_dtype(model["dtype"], settings["precision"], device)
    stamp = provenance(model_id=model["id"], revision=model["revision"], mask=None, config=config, seed=settings["seed"], wall_seconds=0.0)
    max_bytes = int(max_gb * 1e9)
    # estimated from the tokenizer and the config's vocabulary, so a cache past its cap never loads the model
    tokenizer = prepare_tokenizer(load_tokenizer(model["id"], revision=model["revision"]))
    vocab = AutoConfig.from_pretrained(model["id"], revision=model["revision"]).get_text_config().vocab_size
    pairs = list(dict.fromkeys(zip(leads, answers)))
    answer_lengths = kl_baseline_batch(tokenizer, [lead for lead, _ in pairs], [answer for _, answer in pairs], settings).answer_length.tolist()
    estimate = kl_estimate_bytes(answer_lengths, settings["kl_tokens"], vocab, dtype)
    if over_cap(estimate, max_bytes):
        return write_fallback(Path(index_path).parent, key=key, dtype=dtype, width=vocab, prompts=len(pairs), estimate=estimate,
                              max_bytes=max_bytes, stamp=stamp)  # fmt: skip
    target = load_frozen(settings["target"], model["id"], model["revision"], dtype=model["dtype"], device=device)
    with torch.autocast(device_type=target.model.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        index = build_kl_baselines(
            Path(index_path).parent, target, leads, answers, key=key, settings=settings, dtype=dtype, max_bytes=max_bytes,
            batch_size=eval_settings["batch_size"], stamp=stamp,
        )  # fmt: skip
    log.info("KL-baseline cache %s: %d rows, estimated %.1f MB, %s in %.1f s", Path(index_path).parent.name, index["prompts"],
             index["estimated_bytes"] / 1e6, "cached" if index["cached"] else "not cached", time.perf_counter() - started)  # fmt: skip
    return index


def build_run_cache(kind: str, index_path: str | Path, **job) -> dict:
    """Build a run's cache of ``kind``: ``source_states`` or ``kl_baselines`` (one job script serves both rules)."""
    builders = {"source_states": build_run_source_states, "kl_baselines": build_run_kl_baselines}
    if kind not in builders:
        raise ValueError(f"unknown cache kind {kind!r}; allowed: {', '.join(builders)}")
    return builders[kind](index_path, **job)
