"""Batched greedy generation for the bridge: from text prompts, or from input embeddings with the
soft tokens in them, with the generation hygiene a run names.

Hygiene is explicit, never a hidden default: ``repetition_penalty`` (1.0 = off) and
``stop_after_answer`` (a row stops once its answer line is complete: the '#### n' line for GSM8K,
the first non-empty line for HotpotQA). Stopping there never changes a score, since scoring reads
the first answer only; it saves the tokens the original generated past it.

``measure_cache`` also reports the KV cache each row holds when generation ends, counted from
the key and value tensors ``generate`` returns: a row's share is its non-padding positions (its
prompt, and the answer tokens fed back before it stopped) in every layer, so at batch size 1 it
is exactly the cache's bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

ANSWER_LINE = {"gsm8k": re.compile(r"#### \-?[0-9\.\,]+[^\n]*\n"), "hotpotqa": re.compile(r"\S[^\n]*\n")}


@dataclass(frozen=True)
class Hygiene:
    repetition_penalty: float = 1.0
    stop_after_answer: bool = True


@dataclass(frozen=True)
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    kv_cache_bytes: int | None = None  # with measure_cache: this row's share of the cache at the end
    cache_positions: int | None = None  # with measure_cache: the positions that share covers


class AnswerLineComplete(StoppingCriteria):
    """Per row: stop once the generated text holds a complete answer line."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, dataset: str, prompt_length: int):
        self.tokenizer, self.pattern, self.prompt_length = tokenizer, ANSWER_LINE[dataset], prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([bool(self.pattern.search(text)) for text in texts], device=input_ids.device)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding for batched generation; a pad token where the model ships none (Llama, Mistral)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def opening_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """What the tokenizer opens every text with: its BOS where it adds one, else nothing."""
    return tokenizer("")["input_ids"]


def trim_to_answer(text: str, dataset: str) -> str:
    """Cut a generation after its answer line (what ``stop_after_answer`` stops at)."""
    match = ANSWER_LINE[dataset].search(text)
    return text[: match.end()] if match else text


def kv_cache_tensors(cache) -> list[torch.Tensor]:
    """Every key and value tensor a generation's cache holds, [B, H_kv, L, D] each."""
    return [tensor for layer in cache.layers for tensor in (layer.keys, layer.values)]


def row_cache_bytes(cache, positions: int) -> int:
    """Bytes of one row's ``positions`` cached positions in every layer (a sliding layer keeps at most its length)."""
    total = 0
    for tensor in kv_cache_tensors(cache):
        _, heads, length, dim = tensor.shape
        total += min(positions, length) * heads * dim * tensor.element_size()
    return total


def _generate(model, tokenizer, dataset, hygiene, max_new_tokens, prompt_length, measure_cache=False, **inputs) -> list[tuple]:
    stopping = StoppingCriteriaList([AnswerLineComplete(tokenizer, dataset, prompt_length)]) if hygiene.stop_after_answer else None
    with torch.no_grad():
        output = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            repetition_penalty=hygiene.repetition_penalty,
            stopping_criteria=stopping,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            return_dict_in_generate=measure_cache,
        )
    sequences = output.sequences if measure_cache else output
    new_tokens = sequences[:, prompt_length:]  # [B, new]
    prompt_lengths = inputs["attention_mask"].sum(1).tolist()
    results = []
    for row, prompt_tokens in zip(new_tokens, prompt_lengths):
        real = row[(row != tokenizer.pad_token_id) & (row != tokenizer.eos_token_id)]
        text = tokenizer.decode(real, skip_special_tokens=True)
        text = trim_to_answer(text, dataset) if hygiene.stop_after_answer else text
        if measure_cache:
            # the last token sampled is never fed back, so the cache ends one short of the sequence
            positions = prompt_tokens + min(len(real), new_tokens.size(1) - 1)
            results.append((text, len(real), row_cache_bytes(output.past_key_values, positions), positions))
        else:
            results.append((text, len(real)))
    return results


def generate_from_text(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    dataset: str,
    hygiene: Hygiene,
    max_new_tokens: int,
    batch_size: int,
    measure_cache: bool = False,
    add_special_tokens: bool = True,
) -> list[Generation]:
    """Greedy answers to text prompts, ``batch_size`` at a time (left padded); without
    ``add_special_tokens`` the prompts are read exactly as written (no BOS added)."""
    prepare_tokenizer(tokenizer)
    generations = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
        ).to(model.device)
        lengths = batch["attention_mask"].sum(1).tolist()
        outputs = _generate(model, tokenizer, dataset, hygiene, max_new_tokens, batch["input_ids"].size(1), measure_cache, **batch)
        generations += [Generation(text, length, count, *cache) for (text, count, *cache), length in zip(outputs, lengths)]
    return generations


def generate_from_embeds(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    dataset: str,
    hygiene: Hygiene,
    max_new_tokens: int,
    measure_cache: bool = False,
) -> list[Generation]:
    """Greedy answers from left-padded input embeddings [B, L, D] (soft tokens and text)."""
    prepare_tokenizer(tokenizer)
    lengths = attention_mask.sum(1).tolist()
    # with inputs_embeds only, generate returns just the new tokens
    outputs = _generate(
        model, tokenizer, dataset, hygiene, max_new_tokens, 0, measure_cache, inputs_embeds=inputs_embeds, attention_mask=attention_mask
    )
    return [Generation(text, length, count, *cache) for (text, count, *cache), length in zip(outputs, lengths)]
