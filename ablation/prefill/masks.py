"""Attention-mask modes of the prefill ablation, built from transformers' mask functions.

A mode decides what each token may attend to when a decoder LM reads a (prompt, continuation)
sequence in one forward pass:

- ``causal``: the model unchanged (every token sees itself and its past).
- ``prefill_bidir``: the clean prefill ablation. Prompt tokens see every prompt token of their
  row; continuation tokens see the whole prompt and, causally, earlier continuation tokens.
  This is exactly what the model computes when the prompt is prefilled without the causal mask
  and the answer is then decoded token by token against the KV cache.
- ``full_bidir``: the original study's patch (``is_causal=False`` on every multi-token call):
  every non-pad token sees every non-pad token of its row, continuation included.

Masks are composed from ``transformers.masking_utils`` mask functions
(``(batch_idx, head_idx, q_idx, kv_idx) -> bool`` combined with ``and_masks``/``or_masks``) and
materialised by the mask interface of the model's attention implementation: a boolean 4-D
tensor for sdpa, an additive float 4-D tensor for eager, a ``BlockMask`` for flex_attention.
Transformers models use a 4-D mask handed to ``forward`` as-is, so no attention code is patched.
Padding is never attended, and models with sliding-window attention keep their window.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers.masking_utils import (
    ALL_MASK_ATTENTION_FUNCTIONS,
    and_masks,
    bidirectional_mask_function,
    causal_mask_function,
    or_masks,
)

from ablation.prefill.study import check_mask_mode

MASKABLE_ATTENTION = ("eager", "sdpa", "flex_attention")

MaskFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def prompt_block_overlay(prompt_tokens: torch.Tensor) -> MaskFunction:
    """Prompt tokens see every prompt token of their own row (the prefix-LM block).

    ``prompt_tokens`` is a ``[batch, seq]`` bool tensor, True where the token belongs to the prompt.
    """

    def inner_mask(batch_idx, head_idx, q_idx, kv_idx):
        return prompt_tokens[batch_idx, q_idx] & prompt_tokens[batch_idx, kv_idx]

    return inner_mask


def window_overlay(sliding_window: int) -> MaskFunction:
    """Keep a sliding window in both directions, so bidirectional modes respect it too."""

    def inner_mask(batch_idx, head_idx, q_idx, kv_idx):
        return (q_idx - kv_idx).abs() < sliding_window

    return inner_mask


def mode_mask_function(
    mode: str, prompt_tokens: torch.Tensor | None = None, sliding_window: int | None = None
) -> MaskFunction:
    """The mask function of ``mode`` (padding is added later by the mask interface)."""
    check_mask_mode(mode)
    if mode == "causal":
        mask_function = causal_mask_function
    elif mode == "prefill_bidir":
        if prompt_tokens is None:
            raise ValueError("prefill_bidir needs prompt_tokens to know where the prompt ends")
        mask_function = or_masks(causal_mask_function, prompt_block_overlay(prompt_tokens))
    else:
        mask_function = bidirectional_mask_function
    if sliding_window is not None:
        mask_function = and_masks(mask_function, window_overlay(sliding_window))
    return mask_function


def attention_implementation(config) -> str:
    """The attention implementation of the (text) model, checked to accept custom masks."""
    implementation = config.get_text_config()._attn_implementation
    if implementation not in MASKABLE_ATTENTION:
        raise ValueError(
            f"attention implementation {implementation!r} cannot take a custom mask; "
            f"load the model with one of: {', '.join(MASKABLE_ATTENTION)}"
        )
    return implementation


def layer_windows(config) -> dict[str, int | None] | int | None:
    """Sliding windows per layer type when the model mixes types, else its one window (or None)."""
    text_config = config.get_text_config()
    window = getattr(text_config, "sliding_window", None)
    if "sliding_attention" in (getattr(text_config, "layer_types", None) or ()):
        return {"full_attention": None, "sliding_attention": window}
    return window


def build_attention_mask(
    mode: str,
    config,
    padding_mask: torch.Tensor,
    prompt_tokens: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
):
    """The attention mask of ``mode`` for a padded batch, in the format the model's attention takes.

    ``padding_mask`` is the usual ``[batch, seq]`` 0/1 mask; ``prompt_tokens`` marks prompt tokens
    (needed by ``prefill_bidir``). Returns a 4-D tensor or BlockMask, or a dict of them keyed by
    layer type for models that mix full and sliding-window layers.
    """
    implementation = attention_implementation(config)
    make_mask = ALL_MASK_ATTENTION_FUNCTIONS[implementation]
    batch_size, length = padding_mask.shape

    def materialise(sliding_window):
        return make_mask(
            batch_size=batch_size,
            q_length=length,
            kv_length=length,
            mask_function=mode_mask_function(mode, prompt_tokens, sliding_window),
            attention_mask=padding_mask.bool(),
            allow_is_causal_skip=False,
            dtype=dtype,
            device=padding_mask.device,
        )

    windows = layer_windows(config)
    if isinstance(windows, dict):
        return {layer_type: materialise(window) for layer_type, window in windows.items()}
    return materialise(windows)


def position_ids_from_padding(padding_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip padding, so left- and right-padded rows get the same RoPE phases."""
    return (padding_mask.long().cumsum(-1) - 1).clamp(min=0)
