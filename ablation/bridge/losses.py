"""The bridge's training losses (docs/bridge.md, "Config and pieces"), each a pure function of tensors.

Positions are given explicitly: ``answer_positions[b, j]`` is the index, in row b's logits, of
the position that predicts answer token j (−1 past the row's answer), so the bridged sequence
(soft tokens first) and the text baseline (prompt first) can be compared token for token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions (``labels`` aligned with the inputs)."""
    # logits [B, T, V]; labels [B, T]: predict labels[:, t+1] from logits[:, t]
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    if not (shifted_labels != IGNORE).any():
        return shifted_logits.sum() * 0.0  # keeps the graph: a batch without targets contributes nothing
    return F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.size(-1)), shifted_labels.reshape(-1), ignore_index=IGNORE)


def gather_positions(logits: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at ``positions`` [B, J] (−1 = none) -> ([B, J, V], valid mask [B, J])."""
    valid = positions >= 0
    index = positions.clamp(min=0).unsqueeze(-1).expand(-1, -1, logits.size(-1))
    return logits.gather(1, index), valid


KL_REDUCTIONS = ("token_mean", "batchmean")
PROMPT_ALIGNMENT_REDUCTIONS = ("mean", "relative", "sum_hidden")


def kl_to_baseline(
    bridged_logits: torch.Tensor,
    bridged_positions: torch.Tensor,
    baseline_logits: torch.Tensor,
    baseline_positions: torch.Tensor,
    reduction: str = "token_mean",
) -> torch.Tensor:
    """KL(baseline || bridged) over the first answer positions.

    ``token_mean`` averages over the compared positions; ``batchmean`` (the original's) sums over
    positions and vocabulary and divides by the batch size, so it grows with the positions compared.
    """
    baseline = baseline_log_probs(*gather_positions(baseline_logits, baseline_positions))
    return kl_to_log_probs(bridged_logits, bridged_positions, *baseline, reduction)


def baseline_log_probs(logits: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The KL's baseline distributions from the target's logits at the compared positions [B, J, V]
    (gathered in the step, or read from the KL-baseline cache, which stores them as the forward gave
    them): float32 log-probabilities, zero where ``valid`` [B, J] is False, and ``valid``."""
    return F.log_softmax(logits.detach().float(), -1).masked_fill(~valid.unsqueeze(-1), 0.0), valid


def kl_to_log_probs(
    bridged_logits: torch.Tensor,
    bridged_positions: torch.Tensor,
    baseline: torch.Tensor,
    baseline_valid: torch.Tensor,
    reduction: str = "token_mean",
) -> torch.Tensor:
    """``kl_to_baseline`` from the baseline's log-probabilities [B, J, V] (computed in the step or
    read from the KL-baseline cache, ``ablation.bridge.frozen_cache``) and their valid mask [B, J]."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"bridge run setting 'kl_reduction': {reduction!r} is not allowed; allowed: {', '.join(KL_REDUCTIONS)}")
    bridged, valid = gather_positions(bridged_logits.float(), bridged_positions)  # [B, J, V]
    valid = valid & baseline_valid
    if not valid.any():
        return bridged.sum() * 0.0
    kl = F.kl_div(F.log_softmax(bridged, -1), baseline.float().detach(), log_target=True, reduction="none").sum(-1)
    if reduction == "batchmean":
        return (kl * valid).sum() / kl.size(0)
    return (kl * valid).sum() / valid.sum()


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens: [B, T, D], [B, T] -> [B, D]."""
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def info_nce(soft_tokens: torch.Tensor, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch contrast: each row's mean soft token must be closest to its own prompt's mean embedding."""
    if soft_tokens.size(0) < 2:
        return soft_tokens.sum() * 0.0  # no negatives in a batch of one
    anchors = F.normalize(soft_tokens.float().mean(1), dim=-1)  # [B, D]
    positives = F.normalize(masked_mean(prompt_embeds.float().detach(), prompt_mask), dim=-1)  # [B, D]
    similarity = anchors @ positives.T / temperature  # [B, B]
    return F.cross_entropy(similarity, torch.arange(similarity.size(0), device=similarity.device))


def prompt_alignment(soft_tokens: torch.Tensor, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Masked squared error between soft token k and the target's embedding of prompt token k (k < K).

    ``mean`` averages over positions and the hidden dimension; ``relative`` divides that by the
    mean square of the embeddings it aligns to, so the loss is scale-free (1 for soft tokens of the
    right size pointing nowhere in particular) and a weight means the same for any target's
    embedding scale; ``sum_hidden`` (the original's) sums over the hidden dimension and divides by
    the real positions, D times ``mean``.
    """
    if reduction not in PROMPT_ALIGNMENT_REDUCTIONS:
        raise ValueError(f"bridge run setting 'prompt_alignment_reduction': {reduction!r} is not allowed; "
                         f"allowed: {', '.join(PROMPT_ALIGNMENT_REDUCTIONS)}")  # fmt: skip
    k = min(soft_tokens.size(1), prompt_embeds.size(1))
    mask = prompt_mask[:, :k].unsqueeze(-1).to(torch.float32)
    squared = (soft_tokens[:, :k].float() - prompt_embeds[:, :k].float().detach()) ** 2 * mask
    per_position = 1 if reduction == "sum_hidden" else soft_tokens.size(-1)
    loss = squared.sum() / (mask.sum() * per_position).clamp(min=1.0)
    if reduction == "relative":
        reference = (prompt_embeds[:, :k].float().detach() ** 2 * mask).sum() / (mask.sum() * per_position).clamp(min=1.0)
        loss = loss / reference.clamp(min=1e-12)
    return loss


def format_miss_rate(logits: torch.Tensor, answer_positions: torch.Tensor, marker_ids: set[int]) -> float:
    """The original's format loss: the share of rows whose greedy answer holds no marker token.

    Read from detached argmaxes, it has no gradient; it is logged as a metric, and
    ``marker_nll`` is the loss that trains the format.
    """
    greedy, valid = gather_positions(logits.detach(), answer_positions)
    tokens = greedy.argmax(-1)  # [B, J]
    marker = torch.zeros_like(valid)
    for token in marker_ids:
        marker |= tokens == token
    return float(1.0 - (marker & valid).any(1).float().mean())


def marker_nll(logits: torch.Tensor, labels: torch.Tensor, marker_mask: torch.Tensor) -> torch.Tensor:
    """NLL of the gold answer's final '#### n' line: a format loss that carries a gradient."""
    return token_nll(logits, labels.masked_fill(~marker_mask, IGNORE))
