"""Two behaviours of the original's training, each a run setting: the translator's module mode in
training (``translator_mode_in_training``) and the dtype of its weights (``translator_dtype``)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
import yaml

from ablation.bridge.benchmark import load_bench
from ablation.bridge.model import Bridge
from ablation.bridge.parity import DIFFERS, SAME, load_run, parity_rows
from ablation.bridge.settings import resolve_runs
from ablation.bridge.training import run_bridge, trains_in_train_mode
from ablation.config import ConfigError, load_schema, validate_config
from tests.bridge.micro_runs import job, models

REPOSITORY = Path(__file__).resolve().parents[2]
ORIGINAL_PRESET = REPOSITORY / "presets" / "latentwire-original.yaml"
MICRO_BRIDGE = yaml.safe_load((REPOSITORY / "tests" / "configs" / "micro_bridge.yaml").read_text())


def loss_column(run_dir: Path, name: str) -> list[float]:
    return [float(row[name]) for row in csv.DictReader((run_dir / "loss_history.csv").open())]


def modes_in_training(monkeypatch) -> list[list[bool]]:
    """Each training step's translator: whether it and each of its dropout modules are in training mode."""
    seen = []
    losses = Bridge.losses

    def recording(self, translator, rows, step):
        seen.append([translator.training] + [m.training for m in translator.modules() if isinstance(m, torch.nn.Dropout)])
        return losses(self, translator, rows, step)

    monkeypatch.setattr(Bridge, "losses", recording)
    return seen


# ---------------------------------------------------------------- translator_mode_in_training
def test_a_cross_translator_trains_in_the_mode_its_setting_names_after_every_evaluation(micro_bridge_world, baselines, tmp_path, monkeypatch):
    seen = modes_in_training(monkeypatch)
    for mode in ("train", "eval"):
        run_bridge(**job(micro_bridge_world, baselines, tmp_path / mode, dropout=0.5, translator_mode_in_training=mode))
        assert len(seen) == 4 and len(seen[0]) > 1  # four steps, evaluations before steps 0 and 2; the translator has dropouts
        assert {flag for step in seen for flag in step} == {mode == "train"}, mode  # 'eval': dropout off at every step
        seen.clear()
    # seed 004's plan's script: train mode until the first evaluation of a trained translator (step 2 here), eval after
    run_bridge(**job(micro_bridge_world, baselines, tmp_path / "after", dropout=0.5, translator_mode_in_training="after_first_evaluation"))
    assert [set(step) for step in seen] == [{True}, {True}, {False}, {False}]


def test_a_dit_trained_in_eval_mode_has_no_flow_loss(micro_bridge_world, baselines, tmp_path):
    """The original's DiT in eval mode samples from noise at every step: its teacher is unused, the flow loss 0."""
    for mode in ("train", "eval"):
        run_bridge(**job(micro_bridge_world, baselines, tmp_path / mode, translator="dit", train_steps=2, translator_mode_in_training=mode))
    assert all(value > 0 for value in loss_column(tmp_path / "train", "flow"))
    assert loss_column(tmp_path / "eval", "flow") == [0.0, 0.0]
    assert all(value > 0 for value in loss_column(tmp_path / "eval", "nll"))  # the LM losses still train it
    saved = torch.load(tmp_path / "train" / "translator.pt", map_location="cpu", weights_only=True)
    assert {value.dtype for value in saved["state_dict"].values()} == {torch.float32}  # translator_dtype's default


# ---------------------------------------------------------------- translator_dtype
@pytest.mark.parametrize(("translator", "variant"), [("cross", "ours"), ("dit", "ours"), ("dit", "original")])
def test_a_bfloat16_translator_trains_on_cpu_and_the_benchmark_rebuilds_it_in_bfloat16(micro_bridge_world, baselines, tmp_path, translator, variant):
    run_dir = tmp_path / "run"
    summary = run_bridge(**job(micro_bridge_world, baselines, run_dir, translator=translator, dit_variant=variant, train_steps=2,
                               translator_dtype="bfloat16"))  # fmt: skip
    assert summary["trained_steps"] == 2
    assert all(torch.isfinite(torch.tensor(loss_column(run_dir, "total"))))
    saved = torch.load(run_dir / "translator.pt", map_location="cpu", weights_only=True)
    bench = load_bench(run_dir / "translator.pt", models(micro_bridge_world), "cpu")
    names = {name for name, _ in bench.translator.named_parameters()}
    assert names and {saved["state_dict"][name].dtype for name in names} == {torch.bfloat16}
    assert {p.dtype for p in bench.translator.parameters()} == {torch.bfloat16}
    assert bench.translator.rms_match.target_rms.dtype == torch.float32  # buffers stay float32, as the original's
    assert all(torch.equal(bench.translator.state_dict()[name], value) for name, value in saved["state_dict"].items())


# ---------------------------------------------------------------- config
def config_with_runs(runs: dict) -> dict:
    config = copy.deepcopy(MICRO_BRIDGE)
    config["bridge"]["runs"] = runs
    return config


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"translator_dtype": "float16"}, "'bridge.runs.r.translator_dtype': 'float16' is not allowed; allowed: float32, bfloat16"),
        ({"translator_mode_in_training": "inference"}, "'bridge.runs.r.translator_mode_in_training': 'inference' is not allowed; allowed: train, eval"),
        ({"translator": "dit", "dit_flow_warmup_steps": 5, "translator_mode_in_training": "eval"},
         "'bridge.runs.r.dit_flow_warmup_steps': 5 flow-only steps would train nothing with translator_mode_in_training 'eval'"),
    ],
)
def test_bad_values_name_the_key(run, message):
    with pytest.raises(ConfigError) as error:
        validate_config(config_with_runs({"r": run}))
    assert message in str(error.value)


def test_eval_mode_is_fine_without_a_flow_warm_up_or_for_a_cross_translator():
    validate_config(config_with_runs({"a": {"translator": "dit", "translator_mode_in_training": "eval"},
                                      "b": {"translator": "cross", "dit_flow_warmup_steps": 5, "translator_mode_in_training": "eval"}}))  # fmt: skip


def test_the_original_preset_trains_every_run_in_eval_mode_with_bfloat16_weights():
    config, _ = load_run(ORIGINAL_PRESET, "phase1_all_fix")
    runs = resolve_runs(config["bridge"], load_schema(), config["seed"])
    assert {(s["translator_mode_in_training"], s["translator_dtype"]) for s in runs.values()} == {("eval", "bfloat16")}


def test_the_originals_bf16_flag_is_compared_with_the_translators_dtype_too():
    config, settings = load_run(ORIGINAL_PRESET, "phase2_swap_soft_only")

    def verdict(settings: dict) -> str:
        return parity_rows({"bf16": True}, settings, config)[0]["verdict"]

    assert verdict(settings) == SAME
    assert verdict({**settings, "translator_dtype": "float32"}) == DIFFERS


def test_a_resumed_run_takes_the_mode_its_last_evaluation_left():
    assert [trains_in_train_mode("after_first_evaluation", last) for last in (None, 0, 2)] == [True, True, False]
    assert [trains_in_train_mode(setting, 2) for setting in ("train", "eval")] == [True, False]
