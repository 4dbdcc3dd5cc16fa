"""The final save of a fine-tune, with the original study's fallback for models that cannot be saved.

``save_pretrained`` is tried first. If it raises (the original hit an unimplemented reverse
weight conversion for the multimodal Ministral-3 class), the run still keeps its weights: config,
generation config, tokenizer, the raw state dict and ``checkpoint_meta.json`` naming the base
model; ``ablation.models.load_causal_lm`` rehydrates such a directory transparently.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ablation.io import atomic_directory, read_json

log = logging.getLogger(__name__)

CHECKPOINT_META = "checkpoint_meta.json"
RAW_STATE_DICT = "pytorch_model.bin"
RAW_FORMAT = "raw_state_dict"


def save_final_model(
    model, tokenizer, final_dir: str | Path, base_model_id: str, base_model_revision: str | None = None
) -> str:
    """Save atomically into ``final_dir``; return the format written (``save_pretrained`` or ``raw_state_dict``)."""
    with atomic_directory(final_dir) as staging:
        try:
            model.save_pretrained(staging)
            saved_format = "save_pretrained"
        except Exception as error:  # any failure of the library's writer triggers the documented fallback
            log.warning("save_pretrained failed (%s: %s); saving the raw state dict instead", type(error).__name__, error)
            for leftover in staging.iterdir():
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            model.config.save_pretrained(staging)
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(staging)
            torch.save(model.state_dict(), staging / RAW_STATE_DICT)
            meta = {
                "format": RAW_FORMAT,
                "base_model_id": base_model_id,
                "base_model_revision": base_model_revision,
                "save_error": f"{type(error).__name__}: {error}",
            }
            (staging / CHECKPOINT_META).write_text(json.dumps(meta, indent=2) + "\n")
            saved_format = RAW_FORMAT
        tokenizer.save_pretrained(staging)
    return saved_format


def raw_checkpoint_meta(model_dir: str | Path) -> dict | None:
    """The fallback's metadata when ``model_dir`` holds a raw state dict, else None."""
    meta_path = Path(model_dir) / CHECKPOINT_META
    if not meta_path.is_file():
        return None
    meta = read_json(meta_path)
    return meta if meta.get("format") == RAW_FORMAT else None
