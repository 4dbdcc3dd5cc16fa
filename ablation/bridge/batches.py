"""Token layouts of the bridge: what the source reads, and what the target reads around the soft tokens.

Training (right padded)::

    bridged   [soft tokens K][BOS suffix | BOS prompt suffix][answer EOS]    labels on answer EOS
    baseline  [BOS prompt][answer EOS]                                       the text-reading target (KL)
    decode    [soft tokens K][prompt]                                        labels on the prompt

With the original's choices (``train_layout: answer_alone``, ``train_answer_eos: false``,
``kl_baseline: answer_alone``) the lead is BOS alone and the answer has no EOS. The original's token
layout (``token_layout: original``) pads on the left instead, so a shorter row's padding sits
between the soft tokens and BOS and its positions count it, labels BOS too and has no space before
the answer (``original_text_batch``); its source reads left-padded prompts too.

Evaluation (left padded): ``[pad…][soft tokens K][BOS suffix | BOS prompt suffix]``, then the
target generates. ``suffix`` is the line that asks for the answer (``prompts.SOFT_SUFFIX``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from ablation.bridge.losses import IGNORE
from ablation.bridge.prompts import SOFT_SUFFIX

MARKER = "####"


@dataclass
class TargetBatch:
    """Right-padded token ids of the text that follows the soft tokens, and what is predicted."""

    ids: torch.Tensor  # [B, T]
    attention: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T], IGNORE off the answer
    marker: torch.Tensor  # [B, T] bool, the answer's final '#### n' line
    answer_start: torch.Tensor  # [B] index in ``ids`` of the first answer token
    answer_length: torch.Tensor  # [B]


def tokenize_source(tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_tokens: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """The source reads the prompt, kept from the left when longer than ``max_tokens``; padded on the
    right, or on the left as the original did (its forward then counts the padding in positions)."""
    tokenizer.truncation_side = "left"
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens)


def cut_source_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_tokens: int) -> list[int]:
    """The full lengths (special tokens included) of the prompts that ``tokenize_source`` cuts."""
    lengths = (len(ids) for ids in tokenizer(prompts)["input_ids"])
    return [length for length in lengths if length > max_tokens]


def lead_text(dataset: str, prompt: str, prompt_mode: str) -> str:
    """What the target reads right after the soft tokens."""
    return SOFT_SUFFIX[dataset] if prompt_mode == "soft_only" else prompt + SOFT_SUFFIX[dataset]


def _answer_tokens(tokenizer, answer: str, max_tokens: int, eos: bool) -> tuple[list[int], list[bool]]:
    """Answer ids, + EOS with ``eos`` (the target learns to stop), and which of them spell the final marker line."""
    encoded = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    marker_start = answer.rfind(MARKER)
    ending = [tokenizer.eos_token_id] if eos else []
    ids = encoded["input_ids"][:max_tokens] + ending
    marker = [marker_start >= 0 and end > marker_start for _, end in encoded["offset_mapping"][:max_tokens]] + [False] * len(ending)
    return ids, marker


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id padding is written with: the pad token, else EOS (masked out either way)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _pad_right(rows: list[list], value) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows])


def tokenize_target(
    tokenizer: PreTrainedTokenizerBase,
    leads: list[str],
    answers: list[str],
    *,
    max_lead_tokens: int,
    max_answer_tokens: int,
    answer_eos: bool = True,
) -> TargetBatch:
    """Lead text (with BOS, kept from the right) then the answer (+ EOS); labels only on the answer."""
    ids, labels, marker, starts, lengths = [], [], [], [], []
    for lead, answer in zip(leads, answers):
        lead_ids = tokenizer(lead)["input_ids"]
        if len(lead_ids) > max_lead_tokens:  # keep BOS and the lead's end, which asks for the answer
            lead_ids = lead_ids[:1] + lead_ids[len(lead_ids) - max_lead_tokens + 1 :]
        answer_ids, answer_marker = _answer_tokens(tokenizer, answer, max_answer_tokens, answer_eos)
        ids.append(lead_ids + answer_ids)
        labels.append([IGNORE] * len(lead_ids) + answer_ids)
        marker.append([False] * len(lead_ids) + answer_marker)
        starts.append(len(lead_ids))
        lengths.append(len(answer_ids))
    pad = _pad_id(tokenizer)
    padded = _pad_right(ids, pad)
    return TargetBatch(
        ids=padded,
        attention=_pad_right([[1] * len(row) for row in ids], 0),
        labels=_pad_right(labels, IGNORE),
        marker=_pad_right(marker, False),
        answer_start=torch.tensor(starts),
        answer_length=torch.tensor(lengths),
    )


def _pad_left(rows: list[list], value) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([[value] * (width - len(row)) + row for row in rows])


def original_text_batch(tokenizer: PreTrainedTokenizerBase, answers: list[str], max_tokens: int) -> TargetBatch:
    """The original's trained text (``token_layout: original``): each answer stripped, after the
    tokenizer's BOS, cut at ``max_tokens`` and left padded, every real token a label (BOS too,
    predicted from the last soft token)."""
    stripped = [answer.strip() for answer in answers]
    encoded = tokenizer(stripped, return_offsets_mapping=True)
    ids, marker, lengths = [], [], []
    for answer, row, offsets in zip(stripped, encoded["input_ids"], encoded["offset_mapping"]):
        marker_start = answer.rfind(MARKER)
        ids.append(row[:max_tokens])  # cut on the right, as its tokenizer truncated
        marker.append([marker_start >= 0 and end > marker_start for _, end in offsets[:max_tokens]])
        lengths.append(len(ids[-1]))
    pad = _pad_id(tokenizer)
    padded = _pad_left(ids, pad)
    attention = _pad_left([[1] * length for length in lengths], 0)
    width = padded.size(1)
    return TargetBatch(
        ids=padded,
        attention=attention,
        labels=padded.masked_fill(attention == 0, IGNORE),
        marker=_pad_left(marker, False),
        answer_start=torch.tensor([width - length + 1 for length in lengths]),  # after the padding and BOS
        answer_length=torch.tensor([length - 1 for length in lengths]),
    )


def original_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's target tokens of each prompt for prompt alignment and InfoNCE: BOS and the
    prompt's first tokens, ``max_tokens`` in all, left padded: [B, P] ids and mask."""
    rows = [ids[:max_tokens] for ids in tokenizer(list(prompts))["input_ids"]]
    pad = _pad_id(tokenizer)
    return _pad_left(rows, pad), _pad_left([[1] * len(row) for row in rows], 0)


def kl_baseline_leads(prompts: list[str], settings: dict) -> list[str]:
    """What the KL's baseline forward reads before the answer: the prompt (``text_prompt``) or BOS alone (``answer_alone``, the original's)."""
    return list(prompts) if settings["kl_baseline"] == "text_prompt" else [""] * len(prompts)


def kl_baseline_batch(tokenizer: PreTrainedTokenizerBase, leads: list[str], answers: list[str], settings: dict) -> TargetBatch:
    """The KL baseline's text, [BOS lead][answer (EOS)], truncated as the bridged batch is."""
    return tokenize_target(tokenizer, leads, answers, max_lead_tokens=settings["max_prompt_tokens"],
                           max_answer_tokens=settings["max_answer_tokens"], answer_eos=settings["train_answer_eos"])  # fmt: skip


def answer_positions(batch: TargetBatch, offset: int, count: int) -> torch.Tensor:
    """[B, count]: index of the logit that predicts answer token j (``offset`` tokens precede ``ids``); −1 past the answer."""
    j = torch.arange(count).unsqueeze(0)  # [1, count]
    positions = offset + batch.answer_start.unsqueeze(1) + j - 1
    return positions.masked_fill(j >= batch.answer_length.unsqueeze(1), -1)


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's tokens of each prompt without special tokens, right padded: [B, P] ids and mask."""
    rows = [tokenizer(prompt, add_special_tokens=False)["input_ids"][:max_tokens] for prompt in prompts]
    pad = _pad_id(tokenizer)
    return _pad_right(rows, pad), _pad_right([[1] * len(row) for row in rows], 0)


def bridged_inputs(soft_tokens: torch.Tensor, embeddings: torch.nn.Module, batch: TargetBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft tokens then the embedded text: inputs_embeds [B, K+T, D], attention [B, K+T], labels [B, K+T]."""
    batch_size, k = soft_tokens.shape[:2]
    text = embeddings(batch.ids.to(soft_tokens.device)).to(soft_tokens.dtype)  # [B, T, D]
    inputs = torch.cat([soft_tokens, text], dim=1)
    soft_attention = torch.ones(batch_size, k, dtype=batch.attention.dtype)
    attention = torch.cat([soft_attention, batch.attention], dim=1).to(soft_tokens.device)
    labels = torch.cat([torch.full((batch_size, k), IGNORE), batch.labels], dim=1).to(soft_tokens.device)
    return inputs, attention, labels


def generation_inputs(soft_tokens: torch.Tensor, embeddings: torch.nn.Module, tokenizer, leads: list[str], max_lead_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded [pad…][soft K][BOS lead] embeddings [B, L, D] and attention [B, L] for generation."""
    rows = []
    for lead in leads:
        lead_ids = tokenizer(lead)["input_ids"]
        if len(lead_ids) > max_lead_tokens:
            lead_ids = lead_ids[:1] + lead_ids[len(lead_ids) - max_lead_tokens + 1 :]
        rows.append(lead_ids)
    width = max(len(row) for row in rows)
    batch_size, k, dim = soft_tokens.shape
    inputs = torch.zeros(batch_size, k + width, dim, dtype=soft_tokens.dtype, device=soft_tokens.device)
    attention = torch.zeros(batch_size, k + width, dtype=torch.long, device=soft_tokens.device)
    for b, lead_ids in enumerate(rows):
        start = width - len(lead_ids)
        inputs[b, start : start + k] = soft_tokens[b]
        inputs[b, start + k :] = embeddings(torch.tensor(lead_ids, device=soft_tokens.device)).to(soft_tokens.dtype)
        attention[b, start:] = 1
    return inputs, attention
