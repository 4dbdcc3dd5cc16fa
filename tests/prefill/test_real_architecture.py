"""The real preset's stages on a miniature of the real checkpoint, in a real Snakemake run.

``presets/ministral-3b.yaml`` names a multimodal Mistral-3 checkpoint (ministral3 text model,
pixtral vision tower) with FP8 weights. The miniature is built here: that architecture with random
weights, the tiny world's tokenizer, saved with ``save_pretrained`` and block-quantised to the hub's
FP8 layout. The preset runs on it unchanged except for what a CPU test must change: the model path
and device, one CPU thread per job so that two run side by side, the tiny tasks with a small limit,
one fine-tune run of a few steps (gradient accumulation 2) on the tiny instruction set, no cost
plan. Stages 1, 2 (both ablations), 3B and 4, the side-effect evaluation and the report all run.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ablation.models import load_tokenizer
from tests.conftest import MICRO_WORLD
from tests.prefill.builders import build_miniature
from tests.helpers import PRESET, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

RUN = "stage3b_prefix_lm"
STEPS = 2


def preset_on_miniature(miniature) -> dict:
    config = yaml.safe_load(PRESET.read_text())
    config["model"].update(id=str(miniature), device="cpu")
    config["world"] = {**MICRO_WORLD, "vocab_size": 400}
    config["eval"].update(task_set="tiny", limit=3)
    config["finetune"]["dataset"] = "embedded"
    config["finetune"]["defaults"].update(
        train_samples=16, eval_samples=4, max_seq_len=256, max_steps=STEPS, eval_steps=STEPS, gradient_accumulation_steps=2
    )
    config["finetune"]["runs"] = {RUN: config["finetune"]["runs"][RUN]}
    config["planner"] = None
    for job in ("eval", "finetune"):
        config["resources"][job]["threads"] = 1
    return config


def test_the_real_preset_runs_its_stages_on_an_fp8_mistral3_miniature(micro_world, tmp_path):
    miniature = tmp_path / "ministral3-fp8-miniature"
    build_miniature(miniature, load_tokenizer(str(micro_world / "base_model")), fp8=True)
    config = preset_on_miniature(miniature)
    configfile = tmp_path / "preset_on_miniature.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    workdir.mkdir()

    result = snakemake(workdir, configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    assert planned_jobs(result) == {
        "prefetch": 1, "build_world_data": 1, "eval_model": 6, "finetune": 1, "report_results": 1, "all": 1,
    }

    results = workdir / config["results_dir"]
    loaded_fp8 = {"checkpoint_quantization": "fp8", "weight_block_size": [16, 16], "dequantized": True, "dtype": "bfloat16", "fp8_tensors": 0}
    for mask in config["eval"]["masks"]:
        metrics = json.loads((results / "eval" / "base" / mask / "metrics.json").read_text())
        assert metrics["provenance"]["mask"] == mask and len(metrics["tasks"]) == 5
        assert metrics["provenance"]["weights"] == loaded_fp8
    summary = json.loads((results / "finetune" / RUN / "summary.json").read_text())
    assert summary["steps_run"] == STEPS and summary["train_mask"] == "prefill_bidir"
    assert summary["settings"]["precision"] == "bf16" and summary["settings"]["gradient_checkpointing"]
    assert summary["provenance"]["weights"] == loaded_fp8
    final = load_file(results / "finetune" / RUN / "final" / "model.safetensors")
    assert {tensor.dtype for tensor in final.values()} == {torch.bfloat16}
    for mask in ("prefill_bidir", "causal", "full_bidir"):  # Stage 4, the side effect, the published Stage 4's mask
        metrics = json.loads((results / "eval" / RUN / mask / "metrics.json").read_text())
        assert metrics["provenance"]["weights"]["checkpoint_quantization"] is None
    assert RUN in (results / "RESULTS.md").read_text()
