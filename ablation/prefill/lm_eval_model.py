"""lm-eval model type ``masked_hf``: stock ``HFLM`` whose log-likelihoods are scored under a mask mode.

Only ``_loglikelihood_tokens`` is overridden (following lm-eval's ``hf_steered`` pattern): it is
where the context/continuation boundary of each request is known, which ``prefill_bidir``
needs. Tokenisation, request building and metrics stay lm-eval's own.

lm-eval discovers no model plugins, so importing this module is what registers ``masked_hf``. The
``ablation-lm-eval`` command (``cli`` below, installed by ``pip install -e .``) is lm-eval's own
command line with that import done: ``ablation-lm-eval run --model masked_hf --model_args
pretrained=DIR,mask=prefill_bidir --tasks ...`` takes every flag ``lm_eval`` takes. From Python:
``lm_eval.simple_evaluate(model=MaskedHFLM(...))``.

``add_bos_token=False, pair_encoding=original`` tokenize as the original study's scorer did:
``tokenize(prompt + choice)`` without special tokens, the prompt being its first
``len(tokenize(prompt))`` tokens. lm-eval instead moves the prompt's trailing whitespace into the
continuation and prefixes the prompt's own tokens, which differs where the two tokenizations do
not line up (the original's winogrande prompts end in a space).

``logprob_dtype=model`` scores log-probabilities in the model's dtype, as the original did
(``ablation.prefill.scoring``); the default, ``float32``, upcasts the logits first.
"""

from __future__ import annotations

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ablation.models import load_causal_lm, load_tokenizer, resolve_device
from ablation.prefill.scoring import (
    ScoringRequest,
    check_logprob_dtype,
    check_strategy,
    default_strategy,
    score_continuations,
)
from ablation.prefill.study import check_mask_mode

PAIR_ENCODINGS = ("lm_eval", "original")


@register_model("masked_hf")
class MaskedHFLM(HFLM):
    """Zero-shot multiple-choice scoring of any HF decoder LM under ``causal``, ``prefill_bidir`` or ``full_bidir``."""

    def __init__(
        self,
        pretrained,
        mask: str = "causal",
        scoring: str | None = None,
        revision: str | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        device: str = "cpu",
        eval_weights: str = "dequantized",
        tokenizer=None,
        batch_size: int = 16,
        add_bos_token: bool | None = None,
        pair_encoding: str = "lm_eval",
        logprob_dtype: str = "float32",
        **kwargs,
    ) -> None:
        self.mask_mode = check_mask_mode(mask)
        self.scoring = check_strategy(mask, scoring or default_strategy(mask))
        self.logprob_dtype = check_logprob_dtype(logprob_dtype)
        if pair_encoding not in PAIR_ENCODINGS:
            raise ValueError(f"unknown pair_encoding {pair_encoding!r}; allowed: {', '.join(PAIR_ENCODINGS)}")
        self.pair_encoding = pair_encoding
        # (context, continuation) -> continuation tokens scored, for per-token metrics
        self.continuation_tokens: dict[tuple[str, str], int] = {}
        if isinstance(pretrained, str):
            tokenizer = tokenizer or load_tokenizer(pretrained, revision)
            pretrained = load_causal_lm(
                pretrained,
                revision=revision,
                dtype=dtype,
                attn_implementation=attn_implementation,
                device=resolve_device(device),
                quantized_weights=eval_weights,
            )
        super().__init__(
            pretrained=pretrained,
            tokenizer=tokenizer,
            backend="causal",
            batch_size=batch_size,
            add_bos_token=add_bos_token,
            **kwargs,
        )

    @property
    def prepends_bos(self) -> bool:
        """Whether encoded text starts with the tokenizer's BOS token, as ``add_bos_token`` (or its default) has it."""
        bos = self.tokenizer.bos_token_id
        return bos is not None and self.tok_encode("a")[:1] == [bos]

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if self.pair_encoding == "lm_eval":
            return super()._encode_pair(context, continuation)
        whole = self.tok_encode(context + continuation)
        split = len(self.tok_encode(context))
        return whole[:split], whole[split:]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        scores = score_continuations(
            self.model,
            [ScoringRequest(tuple(context), tuple(continuation)) for _, context, continuation in requests],
            mode=self.mask_mode,
            strategy=self.scoring,
            batch_size=override_bs or self.batch_size,
            max_length=self.max_length,
            pad_token_id=self.tokenizer.pad_token_id or 0,
            logprob_dtype=self.logprob_dtype,
        )
        results = []
        for (cache_key, _, continuation), score in zip(requests, scores):
            if cache_key is not None:
                self.continuation_tokens[tuple(cache_key)] = len(continuation)
            answer = (score.logprob, score.is_greedy)
            self.cache_hook.add_partial("loglikelihood", cache_key, answer)
            results.append(answer)
        return results


def cli() -> None:
    """``ablation-lm-eval``: lm-eval's command line, with ``masked_hf`` registered by importing this module."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
