"""Behaviours of the original's training, each a run setting: the translator's module mode in
training (``translator_mode_in_training``), the dtype of its weights (``translator_dtype``) and its
token layout (``token_layout``)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
import yaml

import torch.nn.functional as F

from ablation.bridge.batches import original_prompt_ids, original_text_batch, tokenize_source
from ablation.bridge.benchmark import load_bench
from ablation.bridge.cache_plan import LAYOUT_LEFT_OUT, cache_plan, cached_run_keys
from ablation.bridge.losses import IGNORE
from ablation.bridge.model import Bridge
from ablation.bridge.parity import DIFFERS, SAME, load_run, parity_rows
from ablation.bridge.settings import resolve_runs
from ablation.bridge.training import run_bridge
from ablation.config import ConfigError, load_schema, validate_config
from tests.bridge.micro_runs import frozen_pair, job, models, settings

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
    assert {(s["translator_mode_in_training"], s["translator_dtype"], s["token_layout"]) for s in runs.values()} == {("eval", "bfloat16", "original")}


def test_the_originals_bf16_flag_is_compared_with_the_translators_dtype_too():
    config, settings = load_run(ORIGINAL_PRESET, "phase2_swap_soft_only")

    def verdict(settings: dict) -> str:
        return parity_rows({"bf16": True}, settings, config)[0]["verdict"]

    assert verdict(settings) == SAME
    assert verdict({**settings, "translator_dtype": "float32"}) == DIFFERS


# ---------------------------------------------------------------- token_layout
ORIGINAL_LAYOUT = {"token_layout": "original", "train_layout": "answer_alone", "train_answer_eos": False, "kl_baseline": "answer_alone",
                   "decode_loss_weight": 0.0}  # fmt: skip
ANSWERS = [" Tom has 3 apples.\n#### 3", " She walks 12 km to the market and back, so 24 km.\n#### 24"]


def test_the_originals_text_is_bos_and_the_stripped_answer_left_padded_with_bos_labelled(micro_bridge_world):
    _, target = frozen_pair(micro_bridge_world)
    tokenizer = target.tokenizer
    batch = original_text_batch(tokenizer, ANSWERS, 8192)
    for row, answer in enumerate(ANSWERS):
        real = batch.ids[row][batch.attention[row] == 1].tolist()
        assert real == [tokenizer.bos_token_id] + tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]  # no leading space
        assert batch.attention[row, -len(real):].all() and not batch.attention[row, : batch.ids.size(1) - len(real)].any()  # left padded
        assert batch.labels[row][batch.attention[row] == 1].tolist() == real  # BOS labelled too
        assert (batch.labels[row][batch.attention[row] == 0] == IGNORE).all()
        assert batch.ids[row, batch.answer_start[row]].item() == real[1] and batch.answer_length[row].item() == len(real) - 1
    assert batch.marker[0].any() and not batch.marker[0][batch.attention[0] == 0].any()  # the '#### 3' line
    assert original_text_batch(tokenizer, ANSWERS, 4).ids.size(1) == 4  # cut on the right at its cap


def test_the_originals_prompt_ids_are_bos_first_and_the_source_reads_left_padded(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    ids, mask = original_prompt_ids(target.tokenizer, ["one two", "one two three four five six"], 4)
    assert ids.shape == (2, 4) and ids[1, 0].item() == target.tokenizer.bos_token_id
    assert mask[0].tolist() == [0] * (4 - int(mask[0].sum())) + [1] * int(mask[0].sum())  # left padded
    left = tokenize_source(source.tokenizer, ["a b", "a b c d e"], 128, padding_side="left")
    assert left["attention_mask"][0, 0] == 0 and left["attention_mask"][0, -1] == 1


def test_the_originals_kl_compares_fixed_slices_over_the_padded_text(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    bridge = Bridge(source, target, settings(kl_tokens=5, kl_reduction="batchmean", **ORIGINAL_LAYOUT), "gsm8k")
    k, text = 4, original_text_batch(target.tokenizer, ANSWERS, 512)
    with torch.no_grad():
        baseline = target.model(input_ids=text.ids, attention_mask=text.attention).logits
    logits = torch.randn(2, k + text.ids.size(1), baseline.size(-1))
    expected = F.kl_div(F.log_softmax(logits[:, k : k + 5], -1), F.softmax(baseline[:, :5].float(), -1), reduction="batchmean")
    assert torch.allclose(bridge.original_kl(logits, ANSWERS, k), expected, atol=1e-5)


def test_a_run_with_the_originals_layout_trains_and_reads_no_cache(micro_bridge_world, baselines, tmp_path):
    summary = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", kl_weight=1.0, info_nce_weight=1.0,
                               prompt_alignment_weight=1.0, warmup_steps=0, **ORIGINAL_LAYOUT))  # fmt: skip
    assert summary["trained_steps"] == 4 and summary["settings"]["token_layout"] == "original"
    for name in ("nll", "kl", "info_nce", "prompt_alignment"):
        assert all(value > 0 for value in loss_column(tmp_path / "run", name)), name
    config = validate_config(config_with_runs({"a": ORIGINAL_LAYOUT, "b": ORIGINAL_LAYOUT, "c": {}, "d": {}}))
    runs = resolve_runs(config["bridge"], load_schema(), config["seed"])
    states, kl = cached_run_keys(runs, config["bridge"], "cpu")
    assert set(states) | set(kl) <= {"c", "d"}  # its padding depends on the batch: no cache serves it
    plan = {(entry.kind, entry.runs): entry.plan for entry in cache_plan(runs, config["bridge"], "cpu")}
    assert plan[("source states", ("a", "b"))] == LAYOUT_LEFT_OUT


def test_the_originals_layout_needs_its_text_and_no_decode_loss():
    with pytest.raises(ConfigError) as error:
        validate_config(config_with_runs({"r": {**ORIGINAL_LAYOUT, "train_layout": "lead", "decode_loss_weight": 1.0}}))
    assert "'bridge.runs.r.token_layout': 'original' trains on the original's [BOS answer] text" in str(error.value)
    assert "not train_layout 'lead', decode_loss_weight 1.0" in str(error.value)
