"""Builders the prefill tests share: the Mistral-3 miniature (optionally FP8) and the micro fine-tune."""

from __future__ import annotations

from pathlib import Path

import torch

from ablation.models import save_fp8_checkpoint
from ablation.prefill.finetune import FinetuneSettings, run_finetune
from ablation.prefill.finetune.data import DataPreparation
from tests.conftest import build_model

BLOCK = (16, 16)  # divides every projection of the miniature, so each one has several blocks


def build_miniature(directory: Path, tokenizer, *, fp8: bool, seed: int = 0) -> torch.nn.Module:
    """A random Mistral-3 miniature with the tiny world's tokenizer, saved in bf16 (FP8 projections if ``fp8``).

    Returns the bf16 model that was saved.
    """
    special = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = build_model("ministral3", seed=seed, vocab_size=len(tokenizer), head_dim=8, max_position_embeddings=512, **special)
    model = model.to(torch.bfloat16)
    if fp8:
        save_fp8_checkpoint(model, directory, block_size=BLOCK)
    else:
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


MICRO_SETTINGS = dict(
    train_mask="prefill_bidir", train_samples=48, eval_samples=8, eval_fraction=0.1, max_seq_len=256, max_steps=10,
    per_device_batch_size=4, gradient_accumulation_steps=2, learning_rate=3e-3, weight_decay=0.0, warmup_ratio=0.1,
    optimizer="adamw_torch", lr_scheduler="cosine", precision="fp32", gradient_checkpointing=False, eval_steps=4,
    save_steps=3, logging_steps=1,
)


# the schema's default data preparation, and the original's (the real preset's)
OURS = DataPreparation(strip_fields=False, prompt_bos=True, long_rows="skip", empty_responses="skip")
ORIGINALS = DataPreparation(strip_fields=True, prompt_bos=False, long_rows="truncate", empty_responses="error")


def settings(**overrides) -> FinetuneSettings:
    return FinetuneSettings.merged(MICRO_SETTINGS, overrides)


def finetune(world: Path, run_dir: Path, **overrides) -> dict:
    return run_finetune(
        run_name="micro", base_model_id=str(world / "base_model"), dataset=str(world / "instructions.jsonl"),
        settings=settings(**overrides), run_dir=run_dir, config={"test": True}, seed=5,
    )
