"""Load any decoder LM the study may name: a hub id, a local directory, or a multimodal checkpoint.

Ministral-3 ships as a multimodal Mistral-3 checkpoint on which ``AutoModelForCausalLM`` fails;
the original study fell back to ``AutoModelForImageTextToText`` and fed it text only, and so do we.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)

from ablation.checkpoints import RAW_STATE_DICT, raw_checkpoint_meta

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def is_local_reference(model_id: str) -> bool:
    """True when ``model_id`` names a directory on disk rather than a hub repository."""
    return Path(model_id).exists() or model_id.startswith(("/", "./", "../", "~"))


def check_model_reference(model_id: str) -> None:
    """Fail early, with the path in the message, when a local model directory is missing."""
    if is_local_reference(model_id) and not Path(model_id).expanduser().is_dir():
        raise FileNotFoundError(f"model path {model_id!r} does not exist or is not a directory")


def load_config(model_id: str, revision: str | None = None):
    check_model_reference(model_id)
    try:
        return AutoConfig.from_pretrained(model_id, revision=revision)
    except OSError as error:
        raise FileNotFoundError(
            f"cannot load a model config from {model_id!r} (revision {revision!r}): {error}"
        ) from error


def model_class_for(config):
    """The auto class whose text head scores tokens for this config."""
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return AutoModelForCausalLM
    if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return AutoModelForImageTextToText
    raise ValueError(
        f"model type {config.model_type!r} (architectures {config.architectures}) is not a causal "
        "language model: it has neither a causal-LM nor an image-text-to-text head"
    )


def load_causal_lm(
    model_id: str,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    device: str = "cpu",
) -> PreTrainedModel:
    """Load a decoder LM in eval mode, ready to take custom attention masks."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    raw_meta = raw_checkpoint_meta(model_id) if is_local_reference(model_id) else None
    if raw_meta is not None:
        # a fine-tune saved by the fallback: rebuild the architecture from its base, then its weights
        log.info("rehydrating raw checkpoint %s from base model %s", model_id, raw_meta["base_model_id"])
        model = load_causal_lm(
            raw_meta["base_model_id"],
            revision=raw_meta.get("base_model_revision"),
            dtype=dtype,
            attn_implementation=attn_implementation,
            device="cpu",
        )
        state_dict = torch.load(Path(model_id) / RAW_STATE_DICT, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict)
        return model.to(device).eval()
    config = load_config(model_id, revision)
    model_class = model_class_for(config)
    log.info("loading %s (revision %s) with %s", model_id, revision, model_class.__name__)
    model = model_class.from_pretrained(
        model_id,
        revision=revision,
        dtype=DTYPES[dtype],
        attn_implementation=attn_implementation,
    )
    return model.to(device).eval()


def load_tokenizer(model_id: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    check_model_reference(model_id)
    return AutoTokenizer.from_pretrained(model_id, revision=revision)


def resolve_device(device: str) -> str:
    """``auto`` picks the GPU when there is one."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
