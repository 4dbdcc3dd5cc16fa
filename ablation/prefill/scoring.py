"""Log-likelihood of continuations given contexts under a mask mode.

This is the engine behind our lm-eval model. Two strategies give the same numbers:

- ``single_pass``: one forward per (context, continuation) row over the concatenated tokens,
  with the mode's 4-D mask. Works for every mode. For ``full_bidir`` the row also holds the
  last continuation token, as the original study's scorer fed ``prompt + choice`` whole, so
  under its bidirectional mask earlier positions could see it.
- ``shared_prefill``: each distinct context is prefilled once (bidirectionally for
  ``prefill_bidir``), its KV cache is copied to every continuation, and all continuations are
  scored in one batched decode-style pass. Fewer FLOPs for multiple-choice tasks, and by
  construction what a served model computes. Not defined for ``full_bidir``, whose
  continuation tokens see the future.

``logprob_dtype`` sets the precision of the log-probabilities: ``float32`` upcasts the logits
before ``log_softmax`` and sums a continuation's token log-probs in double precision; ``model``
scores as the original study's scorer did, ``log_softmax`` and the sum in the logits' own dtype
(the model's, bf16 for the real model), so each token's log-prob and each continuation's total are
rounded to it (torch computes both in float32 and rounds the result). On a float32 model the two
are the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from ablation.prefill.masks import build_attention_mask, position_ids_from_padding
from ablation.prefill.study import check_mask_mode

SCORING_STRATEGIES = ("single_pass", "shared_prefill")
LOGPROB_DTYPES = ("float32", "model")


@dataclass(frozen=True)
class ScoringRequest:
    """Token ids of one (context, continuation) pair; the context is the prompt."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # sum of the continuation tokens' log-probabilities
    is_greedy: bool  # every continuation token is the argmax of its prediction
    token_logprobs: tuple[float, ...]  # per continuation token, for leakage audits


def default_strategy(mode: str) -> str:
    return "single_pass" if mode == "full_bidir" else "shared_prefill"


def check_strategy(mode: str, strategy: str) -> str:
    check_mask_mode(mode)
    if strategy not in SCORING_STRATEGIES:
        raise ValueError(f"unknown scoring strategy {strategy!r}; allowed: {', '.join(SCORING_STRATEGIES)}")
    if strategy == "shared_prefill" and mode == "full_bidir":
        raise ValueError("full_bidir lets continuation tokens see the future; score it with single_pass")
    return strategy


def check_logprob_dtype(logprob_dtype: str) -> str:
    if logprob_dtype not in LOGPROB_DTYPES:
        raise ValueError(f"unknown logprob_dtype {logprob_dtype!r}; allowed: {', '.join(LOGPROB_DTYPES)}")
    return logprob_dtype


def log_softmax(logits: torch.Tensor, logprob_dtype: str) -> torch.Tensor:
    """Log-probabilities over the last dim: in float32, or (``model``) in the logits' own dtype, as the original."""
    return logits.log_softmax(-1) if check_logprob_dtype(logprob_dtype) == "model" else logits.float().log_softmax(-1)


def continuation_totals(target_logprobs: torch.Tensor, lengths: Sequence[int]) -> list[float]:
    """Each row's sum of its first ``lengths[row]`` token log-probs (``[rows, cont]``, zeros past a row's length).

    float32 log-probs are summed in double precision; narrower ones (``logprob_dtype: model`` on a
    bf16 or fp16 model) by torch in their dtype, as the original's ``.sum()``: accumulated in
    float32, the total rounded to the dtype.
    """
    if target_logprobs.dtype == torch.float32:
        return [float(sum(row[:length])) for row, length in zip(target_logprobs.tolist(), lengths)]
    return target_logprobs.sum(-1).tolist()


def fit_to_length(request: ScoringRequest, max_length: int, mode: str) -> ScoringRequest:
    """Drop context tokens from the left until the row fits the model's context window."""
    fed_continuation = len(request.continuation) - (0 if mode == "full_bidir" else 1)
    room_for_context = max_length - fed_continuation
    if room_for_context < 1:
        raise ValueError(
            f"a continuation of {len(request.continuation)} tokens does not fit the model's "
            f"context window of {max_length} tokens"
        )
    if len(request.context) <= room_for_context:
        return request
    return ScoringRequest(request.context[-room_for_context:], request.continuation)


def score_continuations(
    model,
    requests: Sequence[ScoringRequest],
    *,
    mode: str,
    strategy: str | None = None,
    batch_size: int = 16,
    max_length: int | None = None,
    pad_token_id: int = 0,
    logprob_dtype: str = "float32",
) -> list[ContinuationScore]:
    """Score every request under ``mode``; results come back in request order."""
    strategy = check_strategy(mode, strategy or default_strategy(mode))
    check_logprob_dtype(logprob_dtype)
    if any(not request.context or not request.continuation for request in requests):
        raise ValueError("every request needs at least one context and one continuation token")
    if max_length is not None:
        requests = [fit_to_length(request, max_length, mode) for request in requests]
    scorer = _score_single_pass if strategy == "single_pass" else _score_shared_prefill
    with torch.inference_mode():
        return scorer(model, list(requests), mode, batch_size, pad_token_id, logprob_dtype)


def _pad_right(rows: list[Sequence[int]], pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``[batch, max_len]`` ids and their 0/1 padding mask."""
    tensors = [torch.tensor(row, dtype=torch.long) for row in rows]
    ids = pad_sequence(tensors, batch_first=True, padding_value=pad_token_id)
    lengths = torch.tensor([len(row) for row in rows])
    padding = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    return ids.to(device), padding.to(device)


def _pad_left(rows: list[Sequence[int]], pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, padding = _pad_right([row[::-1] for row in rows], pad_token_id, device)
    return ids.flip(-1), padding.flip(-1)


def _continuation_scores(
    logprobs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> list[ContinuationScore]:
    """Sum target log-probs over valid positions; logprobs ``[rows, cont, vocab]``."""
    target_logprobs = logprobs.gather(-1, targets[..., None]).squeeze(-1) * valid  # [rows, cont]
    greedy = ((logprobs.argmax(-1) == targets) | ~valid.bool()).all(-1)
    lengths = valid.sum(-1).tolist()
    totals = continuation_totals(target_logprobs, lengths)
    return [
        ContinuationScore(total, bool(flag), tuple(row[:length]))
        for row, length, total, flag in zip(target_logprobs.tolist(), lengths, totals, greedy.tolist())
    ]


def _batches(indices: list[int], batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def _score_single_pass(model, requests, mode, batch_size, pad_token_id, logprob_dtype):
    device = model.device
    scores: list[ContinuationScore | None] = [None] * len(requests)
    feeds_last_token = mode == "full_bidir"

    def fed_tokens(request: ScoringRequest) -> tuple[int, ...]:
        tokens = request.context + request.continuation
        return tokens if feeds_last_token else tokens[:-1]

    # longest first, so each batch pads little and memory peaks at once
    order = sorted(range(len(requests)), key=lambda i: -len(fed_tokens(requests[i])))
    for batch in _batches(order, batch_size):
        rows = [requests[i] for i in batch]
        ids, padding = _pad_right([fed_tokens(row) for row in rows], pad_token_id, device)
        context_lengths = torch.tensor([len(row.context) for row in rows], device=device)
        if mode == "causal":
            attention_mask = padding
        else:
            prompt_tokens = torch.arange(ids.shape[1], device=device)[None, :] < context_lengths[:, None]
            attention_mask = build_attention_mask(mode, model.config, padding, prompt_tokens, model.dtype)
        logits = model(
            input_ids=ids, attention_mask=attention_mask, position_ids=position_ids_from_padding(padding)
        ).logits  # [batch, seq, vocab]

        targets, continuation_padding = _pad_right([row.continuation for row in rows], pad_token_id, device)
        # the token at position p predicts token p + 1: continuation logits start one before it
        positions = (context_lengths[:, None] - 1 + torch.arange(targets.shape[1], device=device)[None, :]).clamp(
            max=ids.shape[1] - 1
        )
        selected = logits[torch.arange(len(rows), device=device)[:, None], positions]  # [batch, cont, vocab]
        batch_scores = _continuation_scores(log_softmax(selected, logprob_dtype), targets, continuation_padding)
        for request_index, score in zip(batch, batch_scores):
            scores[request_index] = score
    return scores


def _group_by_context(requests: list[ScoringRequest]) -> list[list[int]]:
    """Indices of requests sharing a context, longest contexts first."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.context, []).append(index)
    return sorted(groups.values(), key=lambda group: -len(requests[group[0]].context))


def _group_batches(groups: list[list[int]], max_rows: int) -> Iterator[list[list[int]]]:
    """Pack whole context groups into batches of at most ``max_rows`` continuations (at least one group)."""
    batch: list[list[int]] = []
    rows = 0
    for group in groups:
        if batch and rows + len(group) > max_rows:
            yield batch
            batch, rows = [], 0
        batch.append(group)
        rows += len(group)
    if batch:
        yield batch


def _score_shared_prefill(model, requests, mode, batch_size, pad_token_id, logprob_dtype):
    device = model.device
    scores: list[ContinuationScore | None] = [None] * len(requests)
    for groups in _group_batches(_group_by_context(requests), batch_size):
        # 1. prefill each distinct context once; left padding lines every context up to end together
        contexts = [requests[group[0]].context for group in groups]
        context_ids, context_padding = _pad_left(contexts, pad_token_id, device)
        if mode == "causal":
            prefill_mask = context_padding
        else:
            prefill_mask = build_attention_mask(
                mode, model.config, context_padding, context_padding.bool(), model.dtype
            )
        prefill = model(
            input_ids=context_ids,
            attention_mask=prefill_mask,
            position_ids=position_ids_from_padding(context_padding),
            use_cache=True,
            logits_to_keep=1,  # only the last context position predicts a continuation token
        )
        first_token_logprobs = log_softmax(prefill.logits[:, -1], logprob_dtype)  # [contexts, vocab]

        # 2. every continuation of a context reuses its cache and is decoded causally after it
        request_indices = [index for group in groups for index in group]
        row_context = torch.tensor(
            [position for position, group in enumerate(groups) for _ in group], device=device
        )
        continuations = [requests[index].continuation for index in request_indices]
        targets, continuation_padding = _pad_right(continuations, pad_token_id, device)
        logprobs = first_token_logprobs[row_context][:, None, :]  # [rows, 1, vocab]
        if targets.shape[1] > 1:
            cache = prefill.past_key_values
            cache.reorder_cache(row_context)
            decode_ids = targets[:, :-1]
            decode_padding = continuation_padding[:, :-1]
            context_lengths = context_padding.sum(-1)[row_context]
            decoded = model(
                input_ids=decode_ids,
                attention_mask=torch.cat([context_padding[row_context], decode_padding], dim=1),
                position_ids=context_lengths[:, None] + torch.arange(decode_ids.shape[1], device=device)[None, :],
                past_key_values=cache,
                use_cache=True,
            )
            logprobs = torch.cat([logprobs, log_softmax(decoded.logits, logprob_dtype)], dim=1)
        for request_index, score in zip(
            request_indices, _continuation_scores(logprobs, targets, continuation_padding)
        ):
            scores[request_index] = score
    return scores
