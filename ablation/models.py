"""Load any decoder LM the study may name: a hub id, a local directory, or a multimodal checkpoint.

Ministral-3 ships as a multimodal Mistral-3 checkpoint on which ``AutoModelForCausalLM`` fails;
the original study fell back to ``AutoModelForImageTextToText`` and fed it text only, and so do we.

Its weights are also fine-grained FP8 (block-quantised ``float8_e4m3fn`` projections with a
``weight_scale_inv`` per block, a ``quantization_config`` in ``config.json``). The loader detects
that from the config and hands transformers a ``FineGrainedFP8Config`` built from the checkpoint's
own: ``dequantize=True`` expands the projections to the run's dtype at load (what fine-tuning
needs, since the Trainer refuses a purely quantized model, and the default for evaluation), or
``dequantize=False`` keeps them FP8 for evaluation on a GPU that runs FP8 matmuls.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    FineGrainedFP8Config,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.integrations.finegrained_fp8 import Fp8Dequantize
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)
from transformers.utils import is_kernels_available

from ablation.checkpoints import RAW_STATE_DICT, raw_checkpoint_meta
from ablation.references import is_local_reference

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUANTIZATION_METHODS = ("fp8",)  # checkpoint quant_method values the loader knows
QUANTIZED_WEIGHTS = ("dequantized", "native_fp8")  # config key model.eval_weights
NATIVE_FP8_CAPABILITY = (8, 9)  # Ada and newer have FP8 tensor cores
FP8_DTYPE = torch.float8_e4m3fn
FP8_PROJECTION = re.compile(r"(?:^|\.)layers\.\d+\.(?:self_attn|mlp)\.(?:q|k|v|o|gate|up|down)_proj(?:\.weight)?$")


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


def checkpoint_quantization(config) -> dict | None:
    """The checkpoint's ``quantization_config`` as a dict, or None for a float checkpoint.

    Only methods the loader knows pass: another one would load with settings nobody checked.
    """
    quantization = getattr(config, "quantization_config", None)
    if quantization is None:
        return None
    quantization = quantization if isinstance(quantization, dict) else quantization.to_dict()
    method = quantization.get("quant_method")
    method = getattr(method, "value", method)  # transformers' QuantizationMethod enum or a plain string
    if method not in QUANTIZATION_METHODS:
        raise ValueError(
            f"checkpoint config key 'quantization_config.quant_method' is {method!r}; this workflow loads "
            f"float checkpoints and {', '.join(QUANTIZATION_METHODS)} (fine-grained FP8) checkpoints only"
        )
    return {**quantization, "quant_method": method}


def native_fp8_problem(device: str) -> str | None:
    """Why ``device`` cannot run FP8 weights natively, or None when it can."""
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return f"device {device!r} is not a CUDA GPU"
    capability = torch.cuda.get_device_capability(device)
    if capability < NATIVE_FP8_CAPABILITY:
        return (
            f"{torch.cuda.get_device_name(device)} has compute capability {capability[0]}.{capability[1]}; "
            f"FP8 matmuls need {NATIVE_FP8_CAPABILITY[0]}.{NATIVE_FP8_CAPABILITY[1]} or newer (Ada, Hopper, Blackwell)"
        )
    if not is_kernels_available():
        return (
            "the 'kernels' package is missing: transformers runs FP8 matmuls through the "
            "kernels-community/finegrained-fp8 Triton kernel (pip install kernels; fetched from the hub on first use)"
        )
    return None


def fp8_loading_config(quantization: dict, quantized_weights: str, device: str) -> FineGrainedFP8Config:
    """The checkpoint's own FP8 config with ``dequantize`` set; refuses native FP8 where it cannot run.

    Without this, transformers quietly dequantizes on a CPU or an older GPU, and passing a bare
    ``FineGrainedFP8Config`` would reset the checkpoint's ``modules_to_not_convert``.
    """
    if quantized_weights not in QUANTIZED_WEIGHTS:
        raise ValueError(
            f"config key 'model.eval_weights': {quantized_weights!r} is not allowed; allowed: {', '.join(QUANTIZED_WEIGHTS)}"
        )
    if quantized_weights == "native_fp8":
        problem = native_fp8_problem(device)
        if problem is not None:
            raise ValueError(
                f"config key 'model.eval_weights': 'native_fp8' keeps the checkpoint's FP8 weights, which cannot "
                f"run here: {problem}. Use 'dequantized' (the default), or run where FP8 matmuls can"
            )
    return FineGrainedFP8Config.from_dict({**quantization, "dequantize": quantized_weights == "dequantized"})


def forget_fp8_save_conversions(model: PreTrainedModel) -> None:
    """Make a dequantized FP8 load save as the floats it holds.

    transformers keeps the load-time dequantize op and reverses it on ``save_pretrained``: every
    2-D weight is re-quantized to FP8 while ``config.json`` loses its ``quantization_config``, so
    the saved fine-tune would reload as raw FP8 bytes, and small fine-tuning updates would be
    rounded away. Dropping those conversions keeps the renamings and saves plain floats.
    """
    model._weight_conversions = [
        conversion
        for conversion in getattr(model, "_weight_conversions", None) or []
        if not any(isinstance(operation, Fp8Dequantize) for operation in getattr(conversion, "operations", None) or [])
    ]


def weights_record(model: PreTrainedModel, quantization: dict | None, dequantized: bool, dtype: str) -> dict:
    """What was loaded, for provenance: the checkpoint's quantization, and what it became in memory."""
    return {
        "checkpoint_quantization": quantization["quant_method"] if quantization else None,
        "weight_block_size": quantization.get("weight_block_size") if quantization else None,
        "dequantized": dequantized,
        "dtype": dtype,
        "fp8_tensors": sum(1 for parameter in model.parameters() if parameter.dtype == FP8_DTYPE),
    }


def load_causal_lm(
    model_id: str,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    device: str = "cpu",
    quantized_weights: str = "dequantized",
) -> PreTrainedModel:
    """Load a decoder LM in eval mode, ready to take custom attention masks.

    ``quantized_weights`` applies to FP8 checkpoints only: ``dequantized`` (floats in ``dtype``) or
    ``native_fp8``. The returned model's ``weights_provenance`` says what was loaded.
    """
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
        model.weights_provenance = weights_record(model, None, False, dtype)  # the saved floats, not the base's
        return model.to(device).eval()
    config = load_config(model_id, revision)
    model_class = model_class_for(config)
    quantization = checkpoint_quantization(config)
    options = {}
    if quantization is not None:
        options["quantization_config"] = fp8_loading_config(quantization, quantized_weights, device)
        if quantized_weights == "native_fp8":
            options["device_map"] = device  # FP8 weights go straight to the GPU that runs them
    log.info("loading %s (revision %s) with %s, quantization %s", model_id, revision, model_class.__name__, quantization)
    model = model_class.from_pretrained(
        model_id,
        revision=revision,
        dtype=DTYPES[dtype],
        attn_implementation=attn_implementation,
        **options,
    )
    dequantized = quantization is not None and quantized_weights == "dequantized"
    if dequantized:
        forget_fp8_save_conversions(model)
        model.to(DTYPES[dtype])  # the checkpoint's unquantized tensors (norms, embeddings) keep its dtype otherwise
    model.weights_provenance = weights_record(model, quantization, dequantized, dtype)
    return model.to(device).eval()


def quantize_fp8_blocks(weight: torch.Tensor, block_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-wise ``float8_e4m3fn`` quantisation, the hub's layout: ``weight ≈ fp8 * weight_scale_inv`` per block.

    Each block is scaled so that its largest magnitude maps to the FP8 maximum.
    """
    rows, cols = weight.shape
    block_rows, block_cols = block_size
    if rows % block_rows or cols % block_cols:
        raise ValueError(f"weight of shape {tuple(weight.shape)} does not split into {block_rows}x{block_cols} blocks")
    blocks = weight.float().reshape(rows // block_rows, block_rows, cols // block_cols, block_cols)
    largest = blocks.abs().amax(dim=(1, 3)).clamp(min=torch.finfo(torch.float32).tiny)  # [row blocks, col blocks]
    scale_inv = largest / torch.finfo(FP8_DTYPE).max
    fp8 = (blocks / scale_inv[:, None, :, None]).to(FP8_DTYPE).reshape(rows, cols)
    return fp8, scale_inv


def save_fp8_checkpoint(model: PreTrainedModel, directory: str | Path, block_size: tuple[int, int] = (128, 128)) -> None:
    """Save ``model`` in the layout of the hub's fine-grained FP8 checkpoints (Ministral-3's).

    The decoder layers' projection weights become ``float8_e4m3fn`` with a ``weight_scale_inv``
    per block; every other tensor (embeddings, norms, vision tower, projector, head) stays as it
    was; ``config.json`` gets the ``quantization_config``. Lets tests and the GPU readiness check
    exercise the FP8 paths without downloading the real checkpoint.
    """
    directory = Path(directory)
    model.save_pretrained(directory)
    weights_path = directory / "model.safetensors"
    tensors = {}
    for key, tensor in load_file(weights_path).items():
        if FP8_PROJECTION.search(key):
            tensors[key], tensors[key.removesuffix("weight") + "weight_scale_inv"] = quantize_fp8_blocks(tensor, block_size)
        else:
            tensors[key] = tensor
    save_file(tensors, weights_path, metadata={"format": "pt"})
    unconverted = sorted(
        name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and not FP8_PROJECTION.search(name)
    )
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"] = {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "weight_block_size": list(block_size),
        "modules_to_not_convert": unconverted,
    }
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_tokenizer(model_id: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    check_model_reference(model_id)
    return AutoTokenizer.from_pretrained(model_id, revision=revision)


def resolve_device(device: str) -> str:
    """``auto`` picks the GPU when there is one."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
