"""FP8 checkpoints in the hub's layout (Ministral-3's): detection, dequantized loading, fine-tuning, clear errors.

The miniature is built in the test: a random Mistral-3 (ministral3 text model, pixtral vision tower)
saved in bf16 with its decoder projections block-quantised to ``float8_e4m3fn`` plus their
``weight_scale_inv``, and a ``quantization_config`` in ``config.json``. Its dequantized twin is the
same checkpoint with every projection expanded by hand (FP8 value times block scale). The
native-FP8 and GPU training paths need CUDA and are skipped here, with the reason, on CPU.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from ablation.checkpoints import CHECKPOINT_META, RAW_FORMAT, RAW_STATE_DICT
from ablation.config import ConfigError, validate_config
from ablation.prefill.finetune import FinetuneSettings, run_finetune
from ablation.models import (
    FP8_DTYPE,
    checkpoint_quantization,
    load_causal_lm,
    load_config,
    load_tokenizer,
    native_fp8_problem,
)
from ablation.prefill.scoring import score_continuations
from tests.conftest import random_requests
from tests.prefill.builders import BLOCK, build_miniature

REPOSITORY = Path(__file__).resolve().parents[2]
PROJECTIONS_PER_LAYER = 7  # q, k, v, o, gate, up, down
FINETUNE = dict(
    train_mask="prefill_bidir", train_samples=24, eval_samples=4, eval_fraction=0.1, max_seq_len=256, max_steps=3,
    per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-3, weight_decay=0.0, warmup_ratio=0.0,
    optimizer="adamw_torch", lr_scheduler="constant_with_warmup", precision="fp32", gradient_checkpointing=False,
    eval_steps=3, save_steps=3, logging_steps=1,
)


def dequantized_twin(fp8_dir: Path, twin_dir: Path) -> Path:
    """The FP8 checkpoint with each projection expanded by hand, in fp32, and no quantization_config."""
    shutil.copytree(fp8_dir, twin_dir)
    tensors = load_file(fp8_dir / "model.safetensors")
    twin = {}
    for key, tensor in tensors.items():
        if key.endswith("weight_scale_inv"):
            continue
        scale_inv = tensors.get(key.removesuffix("weight") + "weight_scale_inv")
        if scale_inv is not None:
            rows, cols = tensor.shape
            per_element = scale_inv.repeat_interleave(rows // scale_inv.shape[0], 0).repeat_interleave(cols // scale_inv.shape[1], 1)
            tensor = tensor.float() * per_element
        twin[key] = tensor
    save_file(twin, twin_dir / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((fp8_dir / "config.json").read_text())
    del config["quantization_config"]
    (twin_dir / "config.json").write_text(json.dumps(config))
    return twin_dir


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, micro_world):
    """The FP8 miniature, its dequantized twin and the bf16 model it was quantised from."""
    root = tmp_path_factory.mktemp("fp8")
    original = build_miniature(root / "fp8", load_tokenizer(str(micro_world / "base_model")), fp8=True)
    return {"fp8": root / "fp8", "twin": dequantized_twin(root / "fp8", root / "twin"), "original": original}


def scores(model, mode: str) -> list[float]:
    return [score.logprob for score in score_continuations(model, random_requests(), mode=mode)]


def test_the_miniature_has_the_hubs_fp8_layout(checkpoints):
    tensors = load_file(checkpoints["fp8"] / "model.safetensors")
    fp8 = sorted(key for key, tensor in tensors.items() if tensor.dtype == FP8_DTYPE)
    layers = checkpoints["original"].config.text_config.num_hidden_layers
    assert len(fp8) == PROJECTIONS_PER_LAYER * layers and all("language_model" in key for key in fp8)
    for key in fp8:
        scale_inv = tensors[key.removesuffix("weight") + "weight_scale_inv"]
        assert scale_inv.dtype == torch.float32
        assert tuple(scale_inv.shape) == (tensors[key].shape[0] // BLOCK[0], tensors[key].shape[1] // BLOCK[1])
    others = [tensor.dtype for key, tensor in tensors.items() if key not in fp8 and not key.endswith("scale_inv")]
    assert set(others) == {torch.bfloat16}
    quantization = checkpoint_quantization(load_config(str(checkpoints["fp8"])))
    assert quantization["quant_method"] == "fp8" and quantization["weight_block_size"] == list(BLOCK)
    assert "lm_head" in quantization["modules_to_not_convert"]
    assert checkpoint_quantization(load_config(str(checkpoints["twin"]))) is None


def test_block_quantisation_stays_within_fp8_precision(checkpoints):
    twin = load_file(checkpoints["twin"] / "model.safetensors")
    original = checkpoints["original"].state_dict()
    key = "language_model.model.layers.0.mlp.down_proj.weight"
    restored = twin[key]
    expected = original["model.language_model.layers.0.mlp.down_proj.weight"].float()
    # e4m3 keeps 3 mantissa bits: a relative error of at most 2**-4 per element, far less on average
    assert ((restored - expected).norm() / expected.norm()).item() < 2**-4
    assert not torch.equal(restored, expected)


def test_dequantized_loading_gives_the_twins_weights_and_scores(checkpoints):
    fp8 = load_causal_lm(str(checkpoints["fp8"]), dtype="float32")
    twin = load_causal_lm(str(checkpoints["twin"]), dtype="float32")
    assert not fp8.is_quantized and getattr(fp8.config, "quantization_config", None) is None
    assert {parameter.dtype for parameter in fp8.parameters()} == {torch.float32}
    twin_weights = twin.state_dict()
    for name, tensor in fp8.state_dict().items():
        assert torch.equal(tensor, twin_weights[name]), name
    for mode in ("causal", "prefill_bidir"):
        assert scores(fp8, mode) == pytest.approx(scores(twin, mode), abs=1e-5)


def test_provenance_records_what_was_loaded(checkpoints):
    fp8 = load_causal_lm(str(checkpoints["fp8"]), dtype="bfloat16")
    assert {parameter.dtype for parameter in fp8.parameters()} == {torch.bfloat16}
    assert fp8.weights_provenance == {
        "checkpoint_quantization": "fp8", "weight_block_size": list(BLOCK), "dequantized": True, "dtype": "bfloat16", "fp8_tensors": 0,
    }
    twin = load_causal_lm(str(checkpoints["twin"]), dtype="bfloat16")
    assert twin.weights_provenance == {
        "checkpoint_quantization": None, "weight_block_size": None, "dequantized": False, "dtype": "bfloat16", "fp8_tensors": 0,
    }


def test_an_fp8_checkpoint_fine_tunes_and_its_fine_tune_is_saved_as_floats(checkpoints, micro_world, tmp_path):
    summary = run_finetune(
        run_name="fp8", base_model_id=str(checkpoints["fp8"]), dataset=str(micro_world / "instructions.jsonl"),
        settings=FinetuneSettings.merged(FINETUNE), run_dir=tmp_path, config={"test": True}, seed=3,
    )
    assert summary["steps_run"] == 3 and math.isfinite(summary["final_eval_loss"])
    assert summary["provenance"]["weights"]["checkpoint_quantization"] == "fp8"
    assert summary["provenance"]["weights"]["dequantized"] is True
    saved = load_file(tmp_path / "final" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
    assert not any(key.endswith("scale_inv") for key in saved)
    assert "quantization_config" not in json.loads((tmp_path / "final" / "config.json").read_text())
    trained = load_causal_lm(str(tmp_path / "final")).state_dict()
    base = load_causal_lm(str(checkpoints["twin"])).state_dict()
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    moved = (trained[name] - base[name]).abs().max().item()
    assert 0 < moved < 0.05  # fine-tuned, not re-quantized: FP8 bytes read as floats would be off by hundreds


def test_a_raw_state_dict_fine_tune_of_an_fp8_base_rehydrates(checkpoints, tmp_path):
    model = load_causal_lm(str(checkpoints["fp8"]))
    torch.save(model.state_dict(), tmp_path / RAW_STATE_DICT)
    meta = {"format": RAW_FORMAT, "base_model_id": str(checkpoints["fp8"]), "base_model_revision": None}
    (tmp_path / CHECKPOINT_META).write_text(json.dumps(meta))
    rehydrated = load_causal_lm(str(tmp_path))
    assert rehydrated.weights_provenance["checkpoint_quantization"] is None
    assert scores(rehydrated, "prefill_bidir") == pytest.approx(scores(model, "prefill_bidir"), abs=1e-5)


def test_an_unknown_quantization_method_names_the_checkpoint_key(checkpoints, tmp_path):
    shutil.copytree(checkpoints["twin"], tmp_path / "gptq")
    config_path = tmp_path / "gptq" / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'quantization_config\.quant_method' is 'gptq'.*fp8"):
        load_causal_lm(str(tmp_path / "gptq"))


def test_native_fp8_where_it_cannot_run_names_the_config_key(checkpoints):
    with pytest.raises(ValueError, match=r"'model\.eval_weights': 'native_fp8'.*'cpu' is not a CUDA GPU"):
        load_causal_lm(str(checkpoints["fp8"]), quantized_weights="native_fp8", device="cpu")
    with pytest.raises(ValueError, match=r"'model\.eval_weights': 'fp4' is not allowed"):
        load_causal_lm(str(checkpoints["fp8"]), quantized_weights="fp4")


def test_the_config_refuses_native_fp8_on_a_cpu_run():
    config = yaml.safe_load((REPOSITORY / "tests" / "configs" / "micro.yaml").read_text())
    assert validate_config(copy.deepcopy(config))["model"]["eval_weights"] == "dequantized"
    config["model"]["eval_weights"] = "native_fp8"
    with pytest.raises(ConfigError, match=r"'model\.eval_weights': 'native_fp8' is not allowed; allowed: dequantized"):
        validate_config(config)
    preset = yaml.safe_load((REPOSITORY / "presets" / "ministral-3b.yaml").read_text())
    preset["model"]["eval_weights"] = "native_fp8"  # device cuda: allowed
    assert validate_config(preset)["model"]["eval_weights"] == "native_fp8"


CUDA_PROBLEM = "no CUDA GPU" if not torch.cuda.is_available() else None


@pytest.mark.skipif(CUDA_PROBLEM is not None, reason=f"dequantize-for-training on CUDA: {CUDA_PROBLEM}")
def test_an_fp8_checkpoint_fine_tunes_in_bf16_on_cuda(checkpoints, micro_world, tmp_path):
    summary = run_finetune(
        run_name="fp8_cuda", base_model_id=str(checkpoints["fp8"]), dataset=str(micro_world / "instructions.jsonl"),
        settings=FinetuneSettings.merged(FINETUNE, {"precision": "bf16"}), run_dir=tmp_path, config={"test": True},
        seed=3, device="cuda",
    )
    assert summary["steps_run"] == 3 and math.isfinite(summary["final_eval_loss"])
    assert summary["provenance"]["weights"] == {
        "checkpoint_quantization": "fp8", "weight_block_size": list(BLOCK), "dequantized": True, "dtype": "bfloat16", "fp8_tensors": 0,
    }
    assert {tensor.dtype for tensor in load_file(tmp_path / "final" / "model.safetensors").values()} == {torch.bfloat16}


NATIVE_PROBLEM = native_fp8_problem("cuda")


@pytest.mark.skipif(NATIVE_PROBLEM is not None, reason=f"native FP8 evaluation: {NATIVE_PROBLEM}")
def test_native_fp8_scores_close_to_the_dequantized_load_on_cuda(checkpoints):
    native = load_causal_lm(str(checkpoints["fp8"]), dtype="bfloat16", device="cuda", quantized_weights="native_fp8")
    dequantized = load_causal_lm(str(checkpoints["fp8"]), dtype="bfloat16", device="cuda")
    layers = native.config.text_config.num_hidden_layers
    assert native.is_quantized and native.weights_provenance["fp8_tensors"] == PROJECTIONS_PER_LAYER * layers
    assert native.weights_provenance["dequantized"] is False
    # native FP8 also quantises activations per block: close to the dequantized weights' scores, not equal
    assert scores(native, "prefill_bidir") == pytest.approx(scores(dequantized, "prefill_bidir"), rel=0.05)
