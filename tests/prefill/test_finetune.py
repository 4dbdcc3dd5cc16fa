"""Fine-tuning: data, the leakage-safe prefix-LM mask, stop rules, resume after SIGKILL and safe saves."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file

from ablation.checkpoints import save_final_model
from ablation.prefill.finetune import run_finetune
from ablation.prefill.finetune.callbacks import (
    EvalLossPlateauStop,
    NoLearningStop,
    NonFiniteLossError,
    NonFiniteLossGuard,
    StopRecord,
    ThroughputMeter,
    history_csv,
)
from ablation.prefill.finetune.data import (
    IGNORE_INDEX,
    PromptAwareCollator,
    format_prompt,
    load_instruction_splits,
    tokenize_records,
)
from ablation.prefill.finetune.launch import launch_finetune
from ablation.prefill.finetune.run import accumulation_per_process, training_arguments
from ablation.prefill.finetune.training_mask import masked_model_inputs
from ablation.models import load_causal_lm, load_tokenizer
from tests.conftest import build_model
from tests.prefill.builders import MICRO_SETTINGS, ORIGINALS, OURS, finetune, settings

# --- data -------------------------------------------------------------------------------------

def test_prompt_template_follows_the_original():
    assert format_prompt("Add.", "2 and 3") == "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n"
    assert format_prompt("Say hi.", "  ") == "### Instruction:\nSay hi.\n\n### Response:\n"


def test_loss_covers_the_response_and_eos_only(micro_world):
    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    records = Dataset.from_list([{"instruction": "Name a colour.", "input": "", "output": "red"}])
    example = tokenize_records(records, tokenizer, 256, OURS).examples[0]
    prompt_length = example["prompt_length"]
    assert example["labels"][:prompt_length] == [IGNORE_INDEX] * prompt_length
    assert example["labels"][prompt_length:] == example["input_ids"][prompt_length:]
    assert example["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(example["input_ids"][prompt_length:-1]).strip() == "red"


def test_empty_responses_and_overlong_records_are_skipped_and_counted(micro_world):
    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    records = Dataset.from_list([
        {"instruction": "Name a colour.", "input": "", "output": "red"},
        {"instruction": "Name a colour.", "input": "", "output": "   "},
        {"instruction": "Repeat. " * 200, "input": "", "output": "ok"},
    ])
    split = tokenize_records(records, tokenizer, 64, OURS)
    assert (len(split.examples), split.skipped_empty_response, split.skipped_too_long) == (1, 1, 1)


def original_encoding(record: dict, tokenizer, max_seq_len: int) -> tuple[list[int], list[int]] | None:
    """The original's encoding, written out plainly (docs/prefill.md, "Fine-tuning")."""
    instruction, input_text, output = (record[name].strip() for name in ("instruction", "input", "output"))
    if input_text:
        prompt = f"### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    else:
        prompt = f"### Instruction:\n{instruction}\n\n### Response:\n"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(output + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    input_ids = (prompt_ids + target_ids)[:max_seq_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return input_ids, labels


def test_the_originals_preparation_gives_the_originals_token_ids_and_labels(micro_world):
    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    records = [
        {"instruction": "Name a colour.", "input": "", "output": "red"},
        {"instruction": "  Add the numbers. \n", "input": " 2 and 3 ", "output": "\n5  "},
        {"instruction": "Tell a story.", "input": "", "output": "once upon a time " * 20},  # truncated
        {"instruction": "Repeat. " * 40, "input": "", "output": "ok"},  # the prompt fills the window: dropped
    ]
    split = tokenize_records(Dataset.from_list(records), tokenizer, 64, ORIGINALS)
    expected = [encoded for encoded in (original_encoding(r, tokenizer, 64) for r in records) if encoded is not None]
    assert [(e["input_ids"], e["labels"]) for e in split.examples] == expected
    assert len(expected) == 3 and len(expected[2][0]) == 64
    assert (split.skipped_empty_response, split.skipped_too_long, split.truncated) == (0, 1, 1)
    assert all(e["input_ids"][0] != tokenizer.bos_token_id for e in split.examples)  # no BOS
    assert all(e["labels"][: e["prompt_length"]] == [IGNORE_INDEX] * e["prompt_length"] for e in split.examples)
    # our default differs: a BOS before the prompt, the long and the empty rows skipped
    ours = tokenize_records(Dataset.from_list(records), tokenizer, 64, OURS)
    assert ours.examples[0]["input_ids"] == [tokenizer.bos_token_id] + expected[0][0]
    assert (len(ours.examples), ours.skipped_empty_response, ours.skipped_too_long) == (1, 0, 3)


@pytest.mark.parametrize("empty", [{"output": "   "}, {"instruction": " \n"}])
def test_an_empty_instruction_or_output_stops_the_originals_preparation_and_keep_trains_eos(micro_world, empty):
    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    records = [{"instruction": "Name a colour.", "input": "", "output": "red"}, {"instruction": "Say it.", "input": "", "output": "no", **empty}]
    with pytest.raises(ValueError, match="instruction record 1 of the split has an empty instruction or output"):
        tokenize_records(Dataset.from_list(records), tokenizer, 64, ORIGINALS)
    if "output" in empty:  # 'keep' trains the empty answer as EOS alone
        kept = tokenize_records(Dataset.from_list(records), tokenizer, 64, dataclasses.replace(ORIGINALS, empty_responses="keep"))
        assert kept.examples[1]["labels"][kept.examples[1]["prompt_length"]:] == [tokenizer.eos_token_id]


def test_a_missing_dataset_field_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": f"q{i}", "response": "a"}) for i in range(20)) + "\n")
    with pytest.raises(ValueError, match="lacks field.*input, output"):
        load_instruction_splits(str(path), seed=0, train_samples=10, eval_samples=2, eval_fraction=0.1)


def test_unknown_optimizer_or_scheduler_is_named():
    with pytest.raises(ValueError, match="adafactor, adamw_torch"):
        settings(optimizer="sgd")
    with pytest.raises(ValueError, match="cosine, constant_with_warmup, linear"):
        settings(lr_scheduler="step")
    with pytest.raises(ValueError, match="causal, prefill_bidir"):
        settings(train_mask="full_bidir")
    with pytest.raises(ValueError, match="unknown long_rows 'cut'; allowed: skip, truncate"):
        settings(long_rows="cut")
    with pytest.raises(ValueError, match="unknown empty_responses 'drop'; allowed: skip, keep"):
        settings(empty_responses="drop")


def test_collator_pads_and_keeps_prompt_lengths():
    batch = PromptAwareCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "prompt_length": 1},
        {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9], "prompt_length": 2},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]]
    assert batch["labels"][0].tolist() == [-100, 6, 7, -100, -100]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["prompt_lengths"].tolist() == [1, 2]


# --- the training mask ------------------------------------------------------------------------

def response_token_losses(model, train_mask: str, input_ids: list[int], prompt_length: int) -> list[float]:
    """Per-token loss of the response under the training forward path."""
    labels = [IGNORE_INDEX] * prompt_length + input_ids[prompt_length:]
    batch = PromptAwareCollator(0)([{"input_ids": input_ids, "labels": labels, "prompt_length": prompt_length}])
    inputs = masked_model_inputs(model.config, batch, train_mask, model.dtype)
    with torch.no_grad():
        logits = model(**{key: value for key, value in inputs.items() if key != "labels"}).logits[0]
    losses = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(input_ids[1:]), reduction="none")
    return losses[prompt_length - 1 :].tolist()


@pytest.mark.parametrize("train_mask", ["causal", "prefill_bidir"])
def test_a_response_token_loss_never_sees_later_response_tokens(train_mask):
    model = build_model("mistral")
    prompt, response = [3, 14, 15, 9, 26], [5, 35, 8, 9, 7]
    original = response_token_losses(model, train_mask, prompt + response, len(prompt))
    for changed in range(1, len(response)):
        altered = response[:changed] + [50] + response[changed + 1 :]
        losses = response_token_losses(model, train_mask, prompt + altered, len(prompt))
        assert losses[:changed] == pytest.approx(original[:changed], abs=1e-6)


def test_the_prefix_lm_mask_does_open_the_prompt():
    model = build_model("mistral")
    ids, prompt_length = [3, 14, 15, 9, 26, 5, 35, 8], 5
    causal = response_token_losses(model, "causal", ids, prompt_length)
    prefix = response_token_losses(model, "prefill_bidir", ids, prompt_length)
    assert prefix[0] != pytest.approx(causal[0], abs=1e-4)


# --- stop rules -------------------------------------------------------------------------------

def fake_state(step: int, history: list[dict], max_steps: int = 10_000):
    return SimpleNamespace(global_step=step, log_history=history, max_steps=max_steps)


def test_no_learning_stop_fires_only_after_its_step_and_without_improvement():
    record, control = StopRecord(), SimpleNamespace(should_training_stop=False)
    rule = NoLearningStop(after_steps=150, min_improvement=0.08, mode="first_step_to_latest", record=record)
    flat = [{"step": 1, "loss": 2.0}, {"step": 100, "loss": 1.95}]
    rule.on_log(None, fake_state(100, flat), control)
    assert not control.should_training_stop
    rule.on_log(None, fake_state(150, flat + [{"step": 150, "loss": 1.93}]), control)
    assert control.should_training_stop and record.reason == "no_learning"
    control, record = SimpleNamespace(should_training_stop=False), StopRecord()
    NoLearningStop(150, 0.08, "first_step_to_latest", record).on_log(None, fake_state(150, flat + [{"step": 150, "loss": 1.5}]), control)
    assert not control.should_training_stop and record.reason == "max_steps"


def first_stop(rule, history: list[dict], event: str) -> int | None:
    """Replay ``history`` into a stop rule log by log; the step at which it stops, or None."""
    record = StopRecord()
    rule.record = record
    for end, entry in enumerate(history, start=1):
        control = SimpleNamespace(should_training_stop=False)
        getattr(rule, event)(None, fake_state(entry["step"], history[:end]), control)
        if control.should_training_stop:
            return entry["step"]
    return None


def train_log(losses: dict[int, float]) -> list[dict]:
    return [{"step": step, "loss": loss} for step, loss in losses.items()]


def kill_rule(mode: str) -> NoLearningStop:
    return NoLearningStop(after_steps=150, min_improvement=0.08, mode=mode, record=StopRecord())


# Train loss logged every 10 steps (the original's logging); the step-1 log only where the
# first_step_to_latest rule has the Trainer write it.
DIPS_THEN_RISES = {10: 2.0, 50: 1.9, 100: 1.85, 150: 1.95, 200: 1.96}
FLAT = {10: 2.0, 50: 1.98, 100: 1.97, 150: 1.95, 200: 1.95}


def test_original_kill_rule_compares_the_first_log_with_the_best_loss():
    assert first_stop(kill_rule("first_log_to_best"), train_log(DIPS_THEN_RISES), "on_log") is None  # best 1.85: fell 0.15
    assert first_stop(kill_rule("first_step_to_latest"), train_log({1: 2.0, **DIPS_THEN_RISES}), "on_log") == 150  # latest 1.95
    assert first_stop(kill_rule("first_log_to_best"), train_log(FLAT), "on_log") == 150
    # a high step-1 loss counts as learning only where the step-1 loss is the start
    assert first_stop(kill_rule("first_step_to_latest"), train_log({1: 2.5, **FLAT}), "on_log") is None


def plateau_rule(mode: str) -> EvalLossPlateauStop:
    return EvalLossPlateauStop(patience=4, min_delta=0.003, min_steps=600, mode=mode, record=StopRecord())


# Seed 001's Stage 5 run: eval losses at 200, 300 and 400 as its log shows them; from 500 on an
# invented continuation that keeps improving a little at 700, then levels off.
SEED_001_EVALS = {200: 1.118, 300: 1.372, 400: 1.400}
CONTINUATION = {500: 1.405, 600: 1.390, 700: 1.380, 800: 1.379, 900: 1.381, 1000: 1.378, 1100: 1.380, 1200: 1.379}


def eval_log(losses: dict[int, float]) -> list[dict]:
    return [{"step": step, "eval_loss": loss} for step, loss in losses.items()]


def test_seed_001s_curve_stops_where_each_auto_stop_mode_says():
    curve = eval_log({**SEED_001_EVALS, **CONTINUATION})
    # the original ignores 200-500: best 1.390 at 600, 1.380 at 700, then 800-1100 stale
    assert first_stop(plateau_rule("ignore_before_min_steps"), curve, "on_evaluate") == 1100
    # counting them, 1.118 at 200 stays the best: 300-600 are four stale evals
    assert first_stop(plateau_rule("count_before_min_steps"), curve, "on_evaluate") == 600
    # the seed's own evals alone stop neither before min_steps
    for mode in ("ignore_before_min_steps", "count_before_min_steps"):
        assert first_stop(plateau_rule(mode), eval_log(SEED_001_EVALS), "on_evaluate") is None


def test_eval_loss_plateau_stop_needs_patience_and_min_steps():
    def run(losses, step, min_steps=600, mode="count_before_min_steps"):
        record, control = StopRecord(), SimpleNamespace(should_training_stop=False)
        history = [{"step": 100 * (i + 1), "eval_loss": loss} for i, loss in enumerate(losses)]
        rule = EvalLossPlateauStop(patience=4, min_delta=0.003, min_steps=min_steps, mode=mode, record=record)
        rule.on_evaluate(None, fake_state(step, history), control)
        return control.should_training_stop, record.reason

    improving_then_flat = [1.2, 1.1, 1.0, 0.999, 0.998, 1.001, 0.9985]
    assert run(improving_then_flat, 700) == (True, "auto_stop_plateau")
    assert run(improving_then_flat, 500) == (False, "max_steps")  # before min_steps
    assert run(improving_then_flat[:-1], 700) == (False, "max_steps")  # only 3 stale evals
    assert run([1.2, 1.1, 1.0, 0.9, 0.8], 700) == (False, "max_steps")
    # the original's mode sees only the evals at 600 and 700: one stale, no stop
    assert run(improving_then_flat, 700, mode="ignore_before_min_steps") == (False, "max_steps")
    assert run(improving_then_flat, 700, min_steps=300, mode="ignore_before_min_steps") == (True, "auto_stop_plateau")


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"kill_if_no_learning": {"after_steps": 5, "min_improvement": 0.5, "mode": "latest"}}, "kill_if_no_learning.mode"),
        ({"auto_stop": {"patience_evals": 2, "min_delta": 0.5, "min_steps": 4, "mode": "sometimes"}}, "auto_stop.mode"),
        ({"auto_stop": {"patience_evals": 2, "min_delta": 0.5, "min_steps": 4}}, "auto_stop.mode"),
    ],
)
def test_an_unknown_stop_rule_mode_is_refused_naming_the_key(rule, key):
    with pytest.raises(ValueError, match=rf"unknown {key} .*; allowed: "):
        settings(**rule)


def test_non_finite_loss_raises():
    with pytest.raises(NonFiniteLossError, match="nan"):
        NonFiniteLossGuard().on_log(None, fake_state(7, []), None, logs={"loss": math.nan})


def test_history_merges_train_and_eval_rows():
    text = history_csv([
        {"step": 1, "loss": 2.0, "learning_rate": 0.1, "epoch": 0.1, "elapsed_seconds": 1.0},
        {"step": 2, "loss": 1.5, "learning_rate": 0.2, "epoch": 0.2, "elapsed_seconds": 2.0},
        {"step": 2, "eval_loss": 1.7, "epoch": 0.2, "elapsed_seconds": 2.5},
        {"step": 2, "train_runtime": 3.0},
    ])
    assert text.splitlines() == [
        "step,epoch,elapsed_seconds,train_loss,eval_loss,learning_rate",
        "1,0.1,1.0,2.0,,0.1",
        "2,0.2,2.5,1.5,1.7,0.2",
    ]


def test_throughput_of_a_resumed_run_counts_the_time_its_checkpoint_recorded():
    meter = ThroughputMeter()
    checkpoint = SimpleNamespace(global_step=6, num_input_tokens_seen=600, log_history=[{"step": 6, "loss": 2.0, "elapsed_seconds": 100.0}])
    meter.on_train_begin(None, checkpoint, None)
    meter.on_train_end(None, SimpleNamespace(global_step=10, num_input_tokens_seen=1000, log_history=checkpoint.log_history), None)
    assert 100.0 <= meter.seconds < 101.0
    assert meter.seconds_per_step == pytest.approx(meter.seconds / 10) and meter.tokens_per_second == pytest.approx(1000 / meter.seconds)


def test_config_tracking_reaches_the_trainer_through_transformers_integrations(tmp_path):
    # TensorBoard is attached as a callback writing to the run directory; the others go to report_to
    assert training_arguments(settings(), tmp_path, 1, "cpu", ["tensorboard"]).report_to == []
    assert training_arguments(settings(), tmp_path, 1, "cpu", ["tensorboard", "wandb", "mlflow"]).report_to == ["wandb", "mlflow"]


# --- whole runs -------------------------------------------------------------------------------

def test_a_run_writes_final_model_summary_history_and_tensorboard(micro_world, tmp_path):
    summary = finetune(micro_world, tmp_path / "run")
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["steps_run"] == 10 and summary["stop_reason"] == "max_steps"
    assert summary["train_mask"] == "prefill_bidir" and summary["saved_format"] == "save_pretrained"
    assert summary["tokens_seen"] > 0 and summary["tokens_per_second"] > 0 and summary["peak_memory_mb"] > 0
    assert math.isfinite(summary["final_eval_loss"]) and summary["provenance"]["mask"] == "prefill_bidir"
    assert load_causal_lm(str(run / "final")) is not None
    history = (run / "loss_history.csv").read_text().splitlines()
    assert len(history) == 1 + 10 and history[-1].split(",")[0] == "10"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(run.glob(".final.*"))  # no staging directory left behind


def test_eval_loss_plateau_stops_a_run_and_records_why(micro_world, tmp_path):
    summary = finetune(micro_world, tmp_path / "run", learning_rate=1e-9, max_steps=40, eval_steps=2,
                       auto_stop={"patience_evals": 2, "min_delta": 0.5, "min_steps": 4, "mode": "ignore_before_min_steps"})
    assert summary["stop_reason"] == "auto_stop_plateau" and summary["steps_run"] < 40
    assert "did not improve" in summary["stop_detail"]


@pytest.mark.parametrize(
    ("eval_steps", "patience"),
    [
        (3, 3),  # evals at 3, 6, 9: the third stale one is the evaluation of the final weights after training, at 10
        (2, 4),  # evals at 2, 4, 6, 8, 10: the fourth stale one is at the last step
    ],
)
def test_a_run_that_trained_all_its_steps_reports_max_steps_though_a_rule_fires_at_its_end(micro_world, tmp_path, eval_steps, patience):
    summary = finetune(micro_world, tmp_path / "run", learning_rate=1e-9, eval_steps=eval_steps,
                       auto_stop={"patience_evals": patience, "min_delta": 0.5, "min_steps": 0, "mode": "count_before_min_steps"})
    assert summary["steps_run"] == 10 and summary["stop_reason"] == "max_steps" and summary["stop_detail"] == ""


def test_the_evaluation_after_an_early_stop_keeps_the_stop_reason(micro_world, tmp_path):
    # no learning stops at step 5; the plateau rule's second stale eval is the evaluation of the final weights after it
    summary = finetune(micro_world, tmp_path / "run", learning_rate=1e-9, eval_steps=2, logging_steps=1,
                       kill_if_no_learning={"after_steps": 5, "min_improvement": 0.5, "mode": "first_step_to_latest"},
                       auto_stop={"patience_evals": 2, "min_delta": 0.5, "min_steps": 0, "mode": "count_before_min_steps"})
    assert summary["steps_run"] == 5 and summary["stop_reason"] == "no_learning"


def test_no_learning_stops_a_run(micro_world, tmp_path):
    originals = {"strip_fields": True, "prompt_bos": False, "long_rows": "truncate", "empty_responses": "error"}
    summary = finetune(micro_world, tmp_path / "run", learning_rate=1e-9, max_steps=30, logging_steps=2,
                       kill_if_no_learning={"after_steps": 5, "min_improvement": 0.5, "mode": "first_log_to_best"},
                       data_split_seed=42, **originals)
    assert summary["stop_reason"] == "no_learning" and summary["steps_run"] < 30
    assert summary["data_preparation"] == {**originals, "data_split_seed": 42}  # not the run seed, 5
    # the original's kill rule starts from the first regular log: no step-1 row
    assert (tmp_path / "run" / "loss_history.csv").read_text().splitlines()[1].startswith("2,")


def test_a_non_finite_loss_stops_with_a_clear_error_and_no_final_model(micro_world, tmp_path):
    model = load_causal_lm(str(micro_world / "base_model"))
    with torch.no_grad():
        model.lm_head.weight[0, 0] = math.nan
    broken = tmp_path / "broken"
    model.save_pretrained(broken)
    load_tokenizer(str(micro_world / "base_model")).save_pretrained(broken)
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        run_finetune(run_name="nan", base_model_id=str(broken), dataset=str(micro_world / "instructions.jsonl"),
                     settings=settings(), run_dir=tmp_path / "run", config={}, seed=5)
    assert not (tmp_path / "run" / "final").exists() and not (tmp_path / "run" / "summary.json").exists()


KILLED_RUN = """
import os, signal, sys
from transformers import TrainerCallback
import ablation.prefill.finetune.run as run_module
from tests.prefill.builders import finetune

class KillAfterCheckpoint(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 7:  # checkpoint-6 is on disk; die like a lost spot instance
            os.kill(os.getpid(), signal.SIGKILL)

guard = run_module.NonFiniteLossGuard
run_module.NonFiniteLossGuard = lambda: type("Killing", (guard, KillAfterCheckpoint), {})()
finetune(__import__("pathlib").Path(sys.argv[1]), __import__("pathlib").Path(sys.argv[2]))
"""


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(micro_world, tmp_path):
    repository = Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(micro_world), str(tmp_path / "killed")],
                            cwd=repository, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "checkpoints" / "checkpoint-6" / "trainer_state.json").exists()
    assert not (tmp_path / "killed" / "final").exists()

    resumed = finetune(micro_world, tmp_path / "killed")
    uninterrupted = finetune(micro_world, tmp_path / "whole")
    assert resumed["resumed_from_step"] == 6 and resumed["steps_run"] == uninterrupted["steps_run"] == 10
    assert resumed["resume"] == {**uninterrupted["resume"], "resumed_from": "checkpoint-6", "resumes": 1}
    resumed_weights = load_file(tmp_path / "killed" / "final" / "model.safetensors")
    whole_weights = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    for name, tensor in whole_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, atol=1e-5, rtol=1e-4)
    assert resumed["final_eval_loss"] == pytest.approx(uninterrupted["final_eval_loss"], abs=1e-5)
    # times cover both attempts, as the loss history's elapsed seconds do
    history = (tmp_path / "killed" / "loss_history.csv").read_text().splitlines()
    killed_attempts_seconds = float(next(line for line in history if line.startswith("6,")).split(",")[2])
    assert resumed["provenance"]["wall_seconds"] >= resumed["train_seconds"] > killed_attempts_seconds


def test_a_killed_run_resumes_only_under_its_own_settings_and_a_finished_run_retrains(micro_world, tmp_path):
    """The issue's scenario: kill, change the learning rate, rerun: a fresh run, whose summary says why."""
    repository = Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(micro_world), str(tmp_path / "run")],
                            cwd=repository, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    changed = finetune(micro_world, tmp_path / "run", learning_rate=1e-3)
    fresh = finetune(micro_world, tmp_path / "fresh", learning_rate=1e-3)
    assert changed["resumed_from_step"] is None and changed["steps_run"] == 10
    assert changed["resume"]["resumes"] == 0 and "settings or inputs changed" in changed["resume"]["restarted_because"]
    assert changed["final_eval_loss"] == pytest.approx(fresh["final_eval_loss"], abs=1e-5)
    assert not (tmp_path / "run" / "checkpoints").exists()  # deleted once the final model is written

    kept = finetune(micro_world, tmp_path / "run", learning_rate=1e-3, keep_checkpoints=True)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-9").is_dir()
    again = finetune(micro_world, tmp_path / "run", learning_rate=1e-3)  # what --forcerun does: a finished run retrains
    assert again["resumed_from_step"] is None and again["steps_run"] == kept["steps_run"] == 10
    assert "completed run" in again["resume"]["restarted_because"]


def test_the_save_fallback_keeps_weights_that_reload_identically(micro_world, tmp_path):
    base = str(micro_world / "base_model")
    model = load_causal_lm(base)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)  # a "fine-tuned" model that differs from its base

    def failing_save(*args, **kwargs):
        raise NotImplementedError("reverse weight conversion is not implemented")

    model.save_pretrained = failing_save
    saved_format = save_final_model(model, load_tokenizer(base), tmp_path / "final", base)
    assert saved_format == "raw_state_dict"
    meta = json.loads((tmp_path / "final" / "checkpoint_meta.json").read_text())
    assert meta["format"] == "raw_state_dict" and meta["base_model_id"] == base and "NotImplementedError" in meta["save_error"]
    reloaded = load_causal_lm(str(tmp_path / "final"))
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, atol=0, rtol=0)
    assert load_tokenizer(str(tmp_path / "final")) is not None


def test_two_processes_follow_the_one_process_loss_curve(micro_world, tmp_path):
    """accelerate launch with 2 processes (gloo on CPU) and halved accumulation: the same effective batch."""
    job = dict(run_name="ddp", base_model_id=str(micro_world / "base_model"), dataset=str(micro_world / "instructions.jsonl"),
               settings={**MICRO_SETTINGS, "max_steps": 4, "eval_steps": 2, "save_steps": 2, "eval_fraction": 0.2},
               config={}, seed=5)  # 8 eval records: whole per-device batches on either side
    single = launch_finetune({**job, "run_dir": str(tmp_path / "one")}, processes=1)
    double = launch_finetune({**job, "run_dir": str(tmp_path / "two")}, processes=2)
    assert double["steps_run"] == single["steps_run"] == 4
    def train_losses(run):
        rows = (tmp_path / run / "loss_history.csv").read_text().splitlines()[1:]
        return [float(row.split(",")[3]) for row in rows]

    assert train_losses("two") == pytest.approx(train_losses("one"), rel=1e-5)
    assert double["final_eval_loss"] == pytest.approx(single["final_eval_loss"], rel=1e-3)


def test_accumulation_must_split_evenly_over_processes():
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        accumulation_per_process(settings(gradient_accumulation_steps=4), 3)
    assert accumulation_per_process(settings(gradient_accumulation_steps=4), 2) == 2


# --- replay of pre-training text ---------------------------------------------------------------

def test_replayed_documents_score_only_their_continuation(micro_world):
    from ablation.prefill.finetune.replay import MIN_CONTINUATION_TOKENS, MIN_PROMPT_TOKENS, corpus_documents, replay_examples

    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    documents = corpus_documents(micro_world / "corpus.txt")
    assert len(documents) == 300 and all("\n\n" not in document for document in documents)
    rows = replay_examples(documents, tokenizer, 40, max_seq_len=32, seed=3)
    assert rows == replay_examples(documents, tokenizer, 40, max_seq_len=32, seed=3)  # seeded
    assert len({row["prompt_length"] for row in rows}) > 5  # the cut moves
    for row in rows:
        ids, cut = row["input_ids"], row["prompt_length"]
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and len(ids) <= 32
        assert MIN_PROMPT_TOKENS <= cut <= len(ids) - MIN_CONTINUATION_TOKENS
        assert row["labels"] == [IGNORE_INDEX] * cut + ids[cut:]
        assert tokenizer.decode(ids, skip_special_tokens=True).strip() in "\n\n".join(documents)


def test_a_run_mixes_in_its_replay_share_and_names_a_missing_corpus(micro_world, tmp_path):
    summary = run_finetune(
        run_name="micro", base_model_id=str(micro_world / "base_model"), dataset=str(micro_world / "instructions.jsonl"),
        settings=settings(replay_fraction=0.75, max_steps=2), run_dir=tmp_path / "run", config={"test": True}, seed=5,
        replay_corpus=str(micro_world / "corpus.txt"),
    )  # fmt: skip
    instruction_rows = summary["train_records"] - summary["replay_records"]
    assert summary["replay_records"] == 3 * instruction_rows and summary["replay_corpus"].endswith("corpus.txt")
    with pytest.raises(ValueError, match="finetune.replay_corpus"):
        finetune(micro_world, tmp_path / "no_corpus", replay_fraction=0.5)
    with pytest.raises(FileNotFoundError, match="finetune.replay_corpus"):
        run_finetune(
            run_name="micro", base_model_id=str(micro_world / "base_model"), dataset=str(micro_world / "instructions.jsonl"),
            settings=settings(replay_fraction=0.5), run_dir=tmp_path / "missing", config={}, seed=5, replay_corpus=str(tmp_path / "none.txt"),
        )  # fmt: skip
    assert not (tmp_path / "no_corpus" / "summary.json").exists() and not (tmp_path / "missing" / "summary.json").exists()


def test_no_evaluation_item_appears_in_the_instruction_data(micro_world):
    """The fine-tunes teach skills, never the items they are evaluated on."""
    instructions = (micro_world / "instructions.jsonl").read_text()
    items = 0
    for path in sorted((micro_world / "tasks").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for context in row.get("contexts") or [row.get("query") or row.get("sentence")]:
                items += 1
                assert context not in instructions, (path.name, context)
    assert items > 50
