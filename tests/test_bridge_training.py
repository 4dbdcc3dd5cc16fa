"""The bridge's losses, training loop and evaluation on micro models: what trains, what stays frozen,
what a killed run resumes to, and the errors bad input gets."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ablation.bridge import losses as L
from ablation.bridge.baselines import BASELINE_HYGIENE, evaluate_alone
from ablation.bridge.batches import generation_inputs, lead_text
from ablation.bridge.data import eval_examples, load_rows, majority_accuracy, majority_answer
from ablation.bridge.frozen import load_frozen
from ablation.bridge.generation import Hygiene, generate_from_embeds, generate_from_text, opening_ids, trim_to_answer
from ablation.bridge.prompts import soft_question, soft_slot_prompt, task_prompt
from ablation.bridge.run import run_bridge
from ablation.bridge.settings import schema_run_defaults
from ablation.bridge.train import Bridge, NonFiniteLossError
from ablation.config import load_schema

REPOSITORY = Path(__file__).resolve().parent.parent
EMBEDDED = {"path": "embedded", "name": None, "revision": None, "train_split": "train", "eval_split": "test"}
EVAL = {"samples": 8, "batch_size": 4, "max_new_tokens": 10, "few_shot": 0, "few_shot_seed": 42}
MICRO_RUN = {
    "source": "src", "target": "tgt", "translator": "cross", "soft_tokens": 4, "depth": 1, "bottleneck": 16, "heads": 2,
    "dit_dim": 16, "dit_depth": 1, "dit_heads": 2, "train_steps": 4, "warmup_steps": 2, "eval_every": 2,
    "checkpoint_every": 2, "per_device_batch": 4, "max_prompt_tokens": 128, "max_answer_tokens": 64, "seed": 3,
    "precision": "fp32", "description": "",
}  # fmt: skip


def settings(**changes) -> dict:
    return {**schema_run_defaults(load_schema()), **MICRO_RUN, **changes}


def models(world) -> dict:
    return {
        "src": {"id": str(world["source"]), "revision": None, "dtype": "float32"},
        "tgt": {"id": str(world["target"]), "revision": None, "dtype": "float32"},
    }


@pytest.fixture(scope="module")
def baselines(micro_bridge_world, tmp_path_factory):
    """Source-alone and target-alone answers on the micro GSM8K eval set."""
    out = tmp_path_factory.mktemp("baselines")
    paths = {}
    for role, name in (("source", "src"), ("target", "tgt")):
        evaluate_alone(
            model_name=name, model=models(micro_bridge_world)[name], dataset="gsm8k", dataset_source=EMBEDDED,
            embedded_data_dir=micro_bridge_world["data"], eval_settings=EVAL, metrics_path=out / f"{name}.json",
            samples_path=out / f"{name}.jsonl", config={}, seed=1, device="cpu",
        )  # fmt: skip
        paths[role] = str(out / f"{name}.jsonl")
    return paths


def job(world, baselines, run_dir, **changes) -> dict:
    return dict(
        run="micro", settings=settings(**changes), models=models(world), dataset_source=EMBEDDED,
        embedded_data_dir=str(world["data"]), eval_settings=EVAL, baseline_samples=baselines,
        source_metrics=str(Path(baselines["source"]).with_suffix(".json")), run_dir=str(run_dir), config={}, device="cpu",
    )  # fmt: skip


def frozen_pair(world):
    spec = models(world)
    return [load_frozen(name, spec[name]["id"], None, dtype="float32", device="cpu") for name in ("src", "tgt")]


# ---------------------------------------------------------------- losses
def test_losses_vanish_where_they_should():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    positions = torch.tensor([[2, 3, -1], [1, 2, 3]])
    assert L.kl_to_text_baseline(logits, positions, logits.clone(), positions).abs() < 1e-6
    assert L.kl_to_text_baseline(logits, positions, torch.randn(2, 6, 11), positions) > 0.01
    embeds = torch.randn(3, 5, 8)
    mask = torch.ones(3, 5, dtype=torch.long)
    assert L.prompt_alignment(embeds[:, :4], embeds, mask) == 0
    assert L.prompt_alignment(embeds[:, :4] + 1, embeds, mask) == pytest.approx(1.0)
    no_labels = torch.full((2, 6), L.IGNORE)
    assert L.token_nll(logits.requires_grad_(), no_labels) == 0
    # in-batch contrast: aligned rows score far lower than shuffled ones
    aligned = L.info_nce(embeds * 5, embeds * 5, mask, temperature=0.07)
    shuffled = L.info_nce(embeds[[1, 2, 0]] * 5, embeds * 5, mask, temperature=0.07)
    assert torch.isfinite(aligned) and aligned < shuffled


def test_the_marker_loss_reads_only_the_final_line_and_carries_a_gradient():
    logits = torch.randn(1, 5, 7, requires_grad=True)
    labels = torch.tensor([[L.IGNORE, 1, 2, 3, 4]])
    marker = torch.tensor([[False, False, False, True, True]])
    loss = L.marker_nll(logits, labels, marker)
    expected = F.cross_entropy(logits[0, 2:4], labels[0, 3:5])
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert logits.grad[0, :2].abs().sum() == 0 and logits.grad[0, 2:4].abs().sum() > 0


@pytest.mark.parametrize("translator", ["cross", "dit"])
def test_every_loss_is_finite_and_its_gradient_reaches_only_the_translator(micro_bridge_world, translator):
    source, target = frozen_pair(micro_bridge_world)
    run = settings(translator=translator, kl_weight=0.5, info_nce_weight=0.5, prompt_alignment_weight=0.5,
                   format_loss_weight=0.5, decode_loss_weight=0.5, decode_interval=1, warmup_steps=0)  # fmt: skip
    bridge = Bridge(source, target, run, "gsm8k")
    rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])[:4]
    values = bridge.losses(bridge.translator, rows, step=5)
    active = ["nll", "kl", "info_nce", "prompt_alignment", "format", "decode"] + (["flow"] if translator == "dit" else [])
    for name in active:
        assert torch.isfinite(values[name]) and values[name] > 0, name
    values["total"].backward()
    assert all(p.grad is None for p in [*source.model.parameters(), *target.model.parameters()])
    # every translator parameter is in the graph; zero-initialised gates pass no gradient behind them until they open
    assert all(p.grad is not None for p in bridge.translator.parameters())
    optimizer = torch.optim.Adam(bridge.translator.parameters(), lr=1e-2)
    for _ in range(3):  # output projection, then the gates, then what is behind them
        optimizer.step()
        optimizer.zero_grad()
        bridge.losses(bridge.translator, rows, step=5)["total"].backward()
    assert all(p.grad.abs().sum() > 0 for p in bridge.translator.parameters())


def test_losses_wait_for_their_start_step(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    bridge = Bridge(source, target, settings(kl_weight=1.0, info_nce_weight=1.0, warmup_steps=10), "gsm8k")
    rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])[:4]
    early = bridge.losses(bridge.translator, rows, step=4)
    assert early["kl"] == 0 and early["info_nce"] == 0  # KL after the warm-up, InfoNCE after half of it
    middle = bridge.losses(bridge.translator, rows, step=5)
    assert middle["kl"] == 0 and middle["info_nce"] > 0


# ---------------------------------------------------------------- generation
def test_batched_generation_equals_one_prompt_at_a_time(micro_bridge_world):
    _, target = frozen_pair(micro_bridge_world)
    rows = load_rows("gsm8k", EMBEDDED, "test", micro_bridge_world["data"])[:5]
    prompts = [row["question"] for row in rows]
    hygiene = Hygiene(repetition_penalty=1.0, stop_after_answer=False)
    batched = generate_from_text(target.model, target.tokenizer, prompts, dataset="gsm8k", hygiene=hygiene, max_new_tokens=8, batch_size=5)
    single = generate_from_text(target.model, target.tokenizer, prompts, dataset="gsm8k", hygiene=hygiene, max_new_tokens=8, batch_size=1)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.input_tokens for g in batched] == [g.input_tokens for g in single]


def test_the_soft_slot_reference_is_the_target_reading_its_own_question_embeddings(micro_bridge_world):
    """The text pass the baselines make equals the bridged layout with a translator that emitted the
    target's own embeddings of the question: the reference means what the report says it means."""
    _, target = frozen_pair(micro_bridge_world)
    for row in load_rows("gsm8k", EMBEDDED, "test", micro_bridge_world["data"])[:3]:
        slot_prompt = soft_slot_prompt("gsm8k", row, target.tokenizer.decode(opening_ids(target.tokenizer)))
        (as_text,) = generate_from_text(target.model, target.tokenizer, [slot_prompt], dataset="gsm8k",
                                        hygiene=BASELINE_HYGIENE, max_new_tokens=10, batch_size=1, add_special_tokens=False)  # fmt: skip
        question_ids = target.tokenizer(soft_question("gsm8k", row), add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            soft = target.embeddings(question_ids)  # [1, Q, D]
            lead = lead_text("gsm8k", task_prompt("gsm8k", row), "soft_only")
            inputs, attention = generation_inputs(soft, target.embeddings, target.tokenizer, [lead], 128)
        (as_soft,) = generate_from_embeds(target.model, target.tokenizer, inputs, attention, dataset="gsm8k",
                                          hygiene=BASELINE_HYGIENE, max_new_tokens=10)  # fmt: skip
        assert as_text.input_tokens == inputs.shape[1]
        assert as_text.text == as_soft.text


def test_the_baselines_record_the_soft_slot_reference(micro_bridge_world, baselines):
    samples = [json.loads(line) for line in Path(baselines["target"]).read_text().splitlines()]
    metrics = json.loads(Path(baselines["target"]).with_suffix(".json").read_text())
    assert metrics["soft_slot_accuracy"] == sum(sample["soft_slot_correct"] for sample in samples) / len(samples)
    assert all(sample["soft_slot_full"] for sample in samples)


def test_the_answer_line_ends_a_generation():
    assert trim_to_answer(" 3 + 4 = 7.\n#### 7\nQ: next question", "gsm8k") == " 3 + 4 = 7.\n#### 7\n"
    assert trim_to_answer(" Tarn\nQuestion: more", "hotpotqa") == " Tarn\n"
    assert trim_to_answer(" no marker yet", "gsm8k") == " no marker yet"


# ---------------------------------------------------------------- runs
def test_a_run_trains_only_the_translator_and_writes_its_files(micro_bridge_world, baselines, tmp_path):
    source, target = frozen_pair(micro_bridge_world)
    before = {name: p.clone() for name, p in [*source.model.named_parameters(), *target.model.named_parameters()]}
    summary = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run"))
    source, target = frozen_pair(micro_bridge_world)  # reloaded from disk: the run saved nothing over them
    after = dict([*source.model.named_parameters(), *target.model.named_parameters()])
    assert all(torch.equal(before[name], after[name]) for name in before)
    names = {path.name for path in (tmp_path / "run").iterdir()}
    assert names == {"summary.json", "history.jsonl", "loss_history.csv", "translator.pt",
                     "eval_samples_step_0.jsonl", "eval_samples_step_2.jsonl", "eval_samples_step_4.jsonl", "eval_samples_step_final.jsonl"}
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [0, 2, 4, "final"]
    assert set(history[1]["losses"]) >= {"nll", "kl", "info_nce", "total"}
    assert history[0]["soft_token_spread"] < 1e-6  # closed gates at step 0: the source is not read yet
    assert summary["final_soft_token_spread"] == history[-1]["soft_token_spread"] > 0.0
    assert summary["trained_steps"] == 4 and summary["stop_reason"].startswith("max_steps")
    assert summary["compression"] == pytest.approx(summary["mean_prompt_tokens"]["target"] / 4)
    assert summary["provenance"]["source_model"]["local_dir_sha256"]
    target_metrics = json.loads(Path(baselines["target"]).with_suffix(".json").read_text())
    assert summary["target_soft_slot_acc"] == target_metrics["soft_slot_accuracy"]
    source_metrics = json.loads(Path(baselines["source"]).with_suffix(".json").read_text())
    last_layer = len(source_metrics["legibility"]) - 1  # the run reads source_layer -1
    assert summary["source_legibility"] == {"layer": last_layer, **source_metrics["legibility"][str(last_layer)]}
    train_rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])
    examples = eval_examples("gsm8k", load_rows("gsm8k", EMBEDDED, "test", micro_bridge_world["data"]), train_rows, EVAL)
    assert summary["majority_answer"] == majority_answer("gsm8k", train_rows)
    assert summary["majority_acc"] == majority_accuracy("gsm8k", summary["majority_answer"], examples)
    sample = json.loads((tmp_path / "run" / "eval_samples_step_2.jsonl").read_text().splitlines()[0])
    assert list(sample) == ["eval_step", "index", "question", "gold_full_text", "gold_extracted", "source_full",
                            "source_extracted", "target_full", "target_extracted", "bridged_full", "bridged_extracted"]


def test_early_stopping_keeps_and_reloads_the_best_translator(micro_bridge_world, baselines, tmp_path):
    summary = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", train_steps=8, eval_every=1, early_stop_patience=1))
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert summary["stop_reason"].startswith("early_stop: no new best bridged accuracy for 1 evaluations")
    assert summary["trained_steps"] < 8
    # the final evaluation reads the kept translator: the best one, at the earliest best step
    assert summary["final_bridged_acc"] == summary["peak_bridged_acc"] == max(row["bridged_acc"] for row in history)


RUN_JOB = "import json, sys; from ablation.bridge.run import run_bridge; run_bridge(**json.load(open(sys.argv[1])))"


def test_a_killed_run_resumes_to_the_same_translator(micro_bridge_world, baselines, tmp_path):
    """SIGKILL after the first checkpoint, re-run: the translator equals an uninterrupted run's."""
    changes = dict(translator="dit", train_steps=16, eval_every=8, checkpoint_every=4, dit_dropout=0.2, early_stop_patience=0, lr=1e-2)
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}

    def start(run_dir):
        job_file = tmp_path / f"{run_dir.name}.json"
        job_file.write_text(json.dumps(job(micro_bridge_world, baselines, run_dir, **changes)))
        return subprocess.Popen([sys.executable, "-c", RUN_JOB, str(job_file)], env=environment, stderr=subprocess.PIPE)

    killed = start(tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "checkpoints" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert checkpoint.exists() and not (tmp_path / "killed" / "summary.json").exists()
    at_kill = torch.load(checkpoint, weights_only=False)["translator"]
    for process in (start(tmp_path / "killed"), start(tmp_path / "uninterrupted")):
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr.decode()[-2000:]
    resumed = torch.load(tmp_path / "killed" / "translator.pt", weights_only=False)["state_dict"]
    reference = torch.load(tmp_path / "uninterrupted" / "translator.pt", weights_only=False)["state_dict"]
    assert all(torch.allclose(resumed[name], reference[name], atol=1e-6) for name in reference)
    assert any(not torch.equal(resumed[name], at_kill[name]) for name in resumed)  # it trained on after the kill
    resumed_summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert resumed_summary["final_bridged_acc"] == json.loads((tmp_path / "uninterrupted" / "summary.json").read_text())["final_bridged_acc"]
    assert not (tmp_path / "killed" / "checkpoints").exists()
    assert resumed_summary["resume"]["resumes"] == 1 and resumed_summary["resume"]["restarted_because"] is None


def test_a_killed_run_with_changed_settings_starts_afresh(micro_bridge_world, baselines, tmp_path):
    """The issue's scenario: kill after a checkpoint, change the learning rate, rerun: trained from step 0
    at the new rate, as an uninterrupted run at that rate, with none of the first attempt's samples."""
    changes = dict(train_steps=8, eval_every=2, checkpoint_every=4, early_stop_patience=0, lr=1e-2)
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    job_file = tmp_path / "killed.json"
    job_file.write_text(json.dumps(job(micro_bridge_world, baselines, tmp_path / "run", **changes)))
    killed = subprocess.Popen([sys.executable, "-c", RUN_JOB, str(job_file)], env=environment, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert checkpoint.exists()
    (tmp_path / "run" / "eval_samples_step_5.jsonl").write_text("{}\n")  # as if the first attempt got further
    rerun = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", **{**changes, "lr": 3e-3}))
    fresh = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "fresh", **{**changes, "lr": 3e-3}))
    assert rerun["resume"]["resumes"] == 0 and "settings or inputs changed" in rerun["resume"]["restarted_because"]
    def losses(run_dir):  # every step's losses and learning rate, without the wall time
        with open(run_dir / "loss_history.csv") as handle:
            return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(handle)]

    assert losses(tmp_path / "run") == losses(tmp_path / "fresh") and len(losses(tmp_path / "run")) == 8
    assert float(losses(tmp_path / "run")[1]["lr"]) <= 3e-3  # the new rate's schedule, not the killed run's
    assert rerun["final_bridged_acc"] == fresh["final_bridged_acc"] and rerun["trained_steps"] == 8
    samples = sorted(path.name for path in (tmp_path / "run").glob("eval_samples_step_*.jsonl"))
    assert samples == sorted(path.name for path in (tmp_path / "fresh").glob("eval_samples_step_*.jsonl"))


# ---------------------------------------------------------------- bad input
def test_a_non_finite_loss_stops_the_run_without_a_summary(micro_bridge_world, baselines, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    poisoned = tmp_path / "poisoned"
    model = AutoModelForCausalLM.from_pretrained(micro_bridge_world["target"])
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(poisoned)
    AutoTokenizer.from_pretrained(micro_bridge_world["target"]).save_pretrained(poisoned)
    bad = job(micro_bridge_world, baselines, tmp_path / "run")
    bad["models"]["tgt"]["id"] = str(poisoned)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 0"):
        run_bridge(**bad)
    assert not (tmp_path / "run" / "summary.json").exists() and not (tmp_path / "run" / "translator.pt").exists()


def test_a_target_that_is_not_a_causal_lm_is_named(micro_bridge_world, baselines, tmp_path):
    from transformers import DistilBertConfig, DistilBertModel

    encoder = tmp_path / "encoder"
    DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)).save_pretrained(encoder)
    bad = job(micro_bridge_world, baselines, tmp_path / "run")
    bad["models"]["tgt"]["id"] = str(encoder)
    with pytest.raises(ValueError, match="config key 'bridge.models.tgt.id': model type 'distilbert'.*is not a causal language model"):
        run_bridge(**bad)
    assert not (tmp_path / "run").exists()


def test_a_dataset_without_the_needed_fields_is_named(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": "2 + 2?", "solution": "#### 4"}) + "\n")
    with pytest.raises(ValueError, match="config key 'bridge.datasets.gsm8k': split 'train' lacks the field\\(s\\) answer"):
        load_rows("gsm8k", {**EMBEDDED, "path": str(tmp_path)}, "train")


def test_baselines_from_another_eval_set_are_refused(micro_bridge_world, baselines, tmp_path):
    other = tmp_path / "other.jsonl"
    rows = [json.loads(line) for line in Path(baselines["target"]).read_text().splitlines()]
    rows[1]["prompt"] = "a different question"
    other.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match="target-alone samples .* were generated for another eval set"):
        run_bridge(**job(micro_bridge_world, {**baselines, "target": str(other)}, tmp_path / "run"))


def test_two_processes_train_the_same_global_batch(micro_bridge_world, baselines, tmp_path):
    """accelerate launch with 2 processes (gloo on CPU), half the batch each, gradients synchronised:
    the translator lands near one process's on the whole batch, far from one process's on a half."""
    from ablation.bridge.launch import launch_bridge

    runs = {"one": (4, 1), "two": (2, 2), "half": (2, 1)}  # per-device batch, processes
    summaries = {name: launch_bridge(job(micro_bridge_world, baselines, tmp_path / name, per_device_batch=batch, lr=1e-2, early_stop_patience=0), processes=processes)
                 for name, (batch, processes) in runs.items()}  # fmt: skip
    assert summaries["two"]["trained_steps"] == summaries["one"]["trained_steps"] == 4
    weights = {name: torch.load(tmp_path / name / "translator.pt", weights_only=False)["state_dict"] for name in runs}

    def distance(a, b):
        return sum(float((weights[a][key] - weights[b][key]).abs().sum()) for key in weights[a])

    # DDP averages the halves' mean losses, one process takes the mean over all answer tokens: close, not equal
    assert distance("two", "one") < 0.5 * distance("two", "half")
