"""The original study's scorer, kept as the reference our mask modes are tested and benchmarked against.

The original scored each (prompt, choice) with its own batch-1 forward over
``tokenize(prompt + choice)``, and ablated the mask by setting ``is_causal = False`` on every
attention module, which sdpa honours for every call with more than one query token and no
explicit mask. That patch is reproduced here only as ground truth: the workflow itself builds
explicit masks (``ablation.prefill.masks``).

The original took ``log_softmax`` of the model's bf16 logits and summed the continuation's
log-probs in bf16; ``logprob_dtype`` (``ablation.prefill.scoring``) chooses that (``model``) or our
float32 scoring, so the reference is compared with our scorer at the same precision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ablation.prefill.scoring import ContinuationScore, check_logprob_dtype, continuation_totals, log_softmax


@contextmanager
def causal_flag_cleared(model) -> Iterator[None]:
    """The original patch: ``is_causal = False`` on every attention module for the duration."""
    modules = [module for module in model.modules() if hasattr(module, "is_causal") and module is not model]
    saved = [module.is_causal for module in modules]
    try:
        for module in modules:
            module.is_causal = False
        yield
    finally:
        for module, flag in zip(modules, saved):
            module.is_causal = flag


def original_score(
    model,
    context: tuple[int, ...],
    continuation: tuple[int, ...],
    bidirectional: bool = False,
    logprob_dtype: str = "float32",
) -> ContinuationScore:
    """The continuation's total and per-token log-probs from one batch-1 forward over context +
    continuation, and whether every continuation token was the argmax."""
    if bidirectional and model.config.get_text_config()._attn_implementation != "sdpa":
        raise ValueError("the original patch only acts through sdpa's is_causal flag; load the model with sdpa")
    ids = torch.tensor([context + continuation], device=model.device)
    with torch.inference_mode():
        if bidirectional:
            with causal_flag_cleared(model):
                logits = model(input_ids=ids).logits
        else:
            logits = model(input_ids=ids).logits
    logprobs = log_softmax(logits[0, len(context) - 1 : -1], logprob_dtype)  # [cont, vocab]
    targets = torch.tensor(continuation, device=model.device)
    token_logprobs = logprobs.gather(-1, targets[:, None]).squeeze(-1)  # [cont]
    (total,) = continuation_totals(token_logprobs[None], [len(continuation)])
    return ContinuationScore(total, bool((logprobs.argmax(-1) == targets).all()), tuple(token_logprobs.tolist()))


@register_model("original_scorer_hf")
class OriginalScorerLM(HFLM):
    """lm-eval model with the original scorer's shape: batch 1, one full forward per (prompt, choice)."""

    def __init__(self, pretrained, bidirectional: bool = False, logprob_dtype: str = "float32", **kwargs) -> None:
        self.bidirectional = bidirectional
        self.logprob_dtype = check_logprob_dtype(logprob_dtype)
        super().__init__(pretrained=pretrained, backend="causal", **kwargs)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        results = []
        for _, context, continuation in requests:
            score = original_score(
                self.model, tuple(context), tuple(continuation), self.bidirectional, self.logprob_dtype
            )
            results.append((score.logprob, score.is_greedy))
        return results


def dense_loop_prefix_lm_mask(
    prompt_lengths: list[int], padding_mask: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The original collator's prefix-LM mask: a dense ``[batch, 1, L, L]`` additive float tensor, one Python loop per row."""
    batch, length = padding_mask.shape
    blocked = torch.finfo(dtype).min
    mask = torch.full((batch, 1, length, length), blocked, dtype=dtype)
    for row in range(batch):
        valid = int(padding_mask[row].sum())
        prompt = prompt_lengths[row]
        for query in range(valid):
            visible = max(prompt, query + 1)
            mask[row, 0, query, :visible] = 0.0
    return mask
