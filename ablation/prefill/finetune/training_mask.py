"""Turn a collated batch into model inputs under a training mask, through the shared mask module.

``causal`` (Stage 3A) keeps the model's own causal mask. ``prefill_bidir`` (Stage 3B) is the
leakage-safe prefix-LM: prompt tokens attend to the whole prompt, response tokens attend
causally, so no response token sees a later one — the original's first 3B attempt, trained
with the plain patch, leaked the future and its loss collapsed.
"""

from __future__ import annotations

import torch

from ablation.prefill.masks import build_attention_mask, position_ids_from_padding
from ablation.prefill.study import check_train_mask


def masked_model_inputs(config, batch: dict[str, torch.Tensor], train_mask: str, dtype: torch.dtype) -> dict:
    """Model kwargs for a batch from ``PromptAwareCollator`` (the prompt lengths are consumed here)."""
    padding = batch["attention_mask"]
    if check_train_mask(train_mask) == "causal":
        attention_mask = padding
    else:
        positions = torch.arange(padding.shape[1], device=padding.device)[None, :]
        prompt_tokens = positions < batch["prompt_lengths"][:, None]
        attention_mask = build_attention_mask("prefill_bidir", config, padding, prompt_tokens, dtype)
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": attention_mask,
        "position_ids": position_ids_from_padding(padding),
        "labels": batch["labels"],
    }
