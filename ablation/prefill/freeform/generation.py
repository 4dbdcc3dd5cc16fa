"""Batched generation under a mask mode: one masked prefill of the prompt, then cached decoding.

The prompt is prefilled once under the mode's mask from ``ablation.prefill.masks`` (``causal``: the model
unchanged; ``prefill_bidir``: prompt tokens see the whole prompt), then new tokens are decoded one
at a time against the KV cache. A decode step has a single query, which sees the prompt and the
tokens generated before it, so under ``causal`` this is ``model.generate`` token for token.

The original study's patch (``is_causal=False`` on every attention call whose query is longer than
one token) touches only the prefill during generation, where it makes the prompt bidirectional:
for generation it is the same as ``prefill_bidir``, so ``full_bidir`` is not a generation mode.

Rows are left-padded so that every prompt ends at the same column and all rows decode in step;
positions skip the padding, so a padded row gets the RoPE phases of the unpadded prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ablation.prefill.masks import build_attention_mask, position_ids_from_padding

GENERATION_MODES = ("causal", "prefill_bidir")


@dataclass(frozen=True)
class DecodingSettings:
    max_new_tokens: int = 256  # the original's budget
    do_sample: bool = False  # greedy, as the original
    temperature: float = 1.0  # sampling only
    top_p: float = 1.0  # sampling only: nucleus mass kept
    seed: int = 0  # sampling only


@dataclass(frozen=True)
class Generated:
    tokens: tuple[int, ...]  # new tokens, the stopping EOS included (as model.generate returns them)
    finished: bool  # stopped on an EOS token rather than on max_new_tokens
    batch_seconds: float  # wall time of the batch this row was generated in
    batch_rows: int


def check_generation_mode(mode: str) -> str:
    if mode not in GENERATION_MODES:
        hint = " (for generation the original's full_bidir patch is prefill_bidir)" if mode == "full_bidir" else ""
        raise ValueError(f"unknown generation mode {mode!r}{hint}; allowed: {', '.join(GENERATION_MODES)}")
    return mode


def left_pad(rows: Sequence[Sequence[int]], pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``[batch, max_len]`` ids and their 0/1 padding mask."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    padding = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        padding[index, width - len(row) :] = 1
    return ids.to(device), padding.to(device)


def next_tokens(logits: torch.Tensor, settings: DecodingSettings, generator: torch.Generator | None) -> torch.Tensor:
    """Greedy or temperature/top-p sampled tokens from ``[batch, vocab]`` logits."""
    if not settings.do_sample:
        return logits.argmax(-1)
    probabilities = (logits.float() / settings.temperature).softmax(-1)
    if settings.top_p < 1.0:
        sorted_probabilities, order = probabilities.sort(-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the most likely token always stays)
        outside = sorted_probabilities.cumsum(-1) - sorted_probabilities >= settings.top_p
        sorted_probabilities = sorted_probabilities.masked_fill(outside, 0.0)
        probabilities = torch.zeros_like(probabilities).scatter(-1, order, sorted_probabilities)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


def prefill_mask(model, mode: str, padding: torch.Tensor):
    """The prompt's attention mask: the padding mask (causal) or the 4-D bidirectional-prompt mask."""
    if mode == "causal":
        return padding
    return build_attention_mask("prefill_bidir", model.config, padding, padding.bool(), model.dtype)


def generate_batch(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    mode: str,
    settings: DecodingSettings,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    generator: torch.Generator | None = None,
) -> list[tuple[tuple[int, ...], bool]]:
    """(new tokens, stopped on EOS) of each prompt, decoded together."""
    device = model.device
    ids, padding = left_pad(prompts, pad_token_id, device)  # [batch, prompt]
    prompt_lengths = padding.sum(-1)  # [batch]
    output = model(
        input_ids=ids,
        attention_mask=prefill_mask(model, mode, padding),
        position_ids=position_ids_from_padding(padding),
        use_cache=True,
        logits_to_keep=1,
    )
    cache, logits = output.past_key_values, output.logits[:, -1]  # [batch, vocab]
    eos = torch.tensor(list(eos_token_ids), device=device)
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    attention = padding
    steps = []
    for step in range(settings.max_new_tokens):
        tokens = next_tokens(logits, settings, generator).masked_fill(finished, pad_token_id)  # [batch]
        steps.append(tokens)
        finished |= torch.isin(tokens, eos)
        if bool(finished.all()) or step == settings.max_new_tokens - 1:
            break
        attention = torch.cat([attention, attention.new_ones((len(prompts), 1))], dim=1)
        output = model(
            input_ids=tokens[:, None],
            attention_mask=attention,
            position_ids=(prompt_lengths + step)[:, None],
            past_key_values=cache,
            use_cache=True,
        )
        cache, logits = output.past_key_values, output.logits[:, -1]
    generated = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in prompts]  # [batch, new]
    results = []
    for row in generated:
        stop = next((index for index, token in enumerate(row) if token in set(eos_token_ids)), None)
        results.append((tuple(row if stop is None else row[: stop + 1]), stop is not None))
    return results


def generate(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    mode: str,
    settings: DecodingSettings = DecodingSettings(),
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    batch_size: int = 16,
    on_batch: Callable[[list[int], list[Generated]], None] | None = None,
) -> list[Generated]:
    """Generate for every prompt under ``mode``, in batches of similar lengths; results in prompt order.

    ``on_batch(prompt indices, generations)`` is called after each batch, so a caller can save
    finished rows before a later batch fails.
    """
    check_generation_mode(mode)
    if any(len(prompt) == 0 for prompt in prompts):
        raise ValueError("every prompt needs at least one token")
    if settings.do_sample and settings.temperature <= 0:
        raise ValueError("sampling needs a temperature > 0; use do_sample=False for greedy decoding")
    generator = torch.Generator(device=model.device).manual_seed(settings.seed) if settings.do_sample else None
    order = sorted(range(len(prompts)), key=lambda index: -len(prompts[index]))
    results: list[Generated | None] = [None] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            started = time.perf_counter()
            rows = generate_batch(
                model,
                [prompts[index] for index in batch],
                mode=mode,
                settings=settings,
                eos_token_ids=eos_token_ids,
                pad_token_id=pad_token_id,
                generator=generator,
            )
            seconds = time.perf_counter() - started
            generated = [Generated(tokens, finished, seconds, len(batch)) for tokens, finished in rows]
            for index, row in zip(batch, generated):
                results[index] = row
            if on_batch is not None:
                on_batch(batch, generated)
    return results
