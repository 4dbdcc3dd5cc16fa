"""The bridge's losses, training loop and evaluation on micro models: what trains, what stays frozen,
what a killed run resumes to, and the errors bad input gets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ablation.bridge import losses as L
from ablation.bridge.baselines import BASELINE_HYGIENE, evaluate_alone
from ablation.bridge.batches import generation_inputs, lead_text, tokenize_source
from ablation.bridge.data import eval_examples, load_rows, majority_accuracy, majority_answer
from ablation.bridge.generation import Hygiene, generate_from_embeds, generate_from_text, opening_ids, trim_to_answer
from ablation.bridge.prompts import soft_question, soft_slot_prompt, task_prompt
from ablation.bridge.training import _early_stop_update, final_evaluation, run_bridge
from ablation.bridge.model import Bridge, NonFiniteLossError, lr_schedule, optimizer_and_schedule
from ablation.bridge.translators import TranslatorOutput
from ablation.io import atomic_write_jsonl
from ablation.world.pretrain import pretrain_model
from ablation.world.corpus import DOCUMENT_SEPARATOR
from ablation.world.tokenizer import SPECIAL_TOKENS
from tests.bridge.micro_runs import (
    EMBEDDED,
    EVAL,
    MICRO_RUN,
    frozen_pair,
    job,
    kill_after_first_checkpoint,
    models,
    settings,
    start_bridge_process,
)


# ---------------------------------------------------------------- losses
def test_losses_vanish_where_they_should():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    positions = torch.tensor([[2, 3, -1], [1, 2, 3]])
    assert L.kl_to_baseline(logits, positions, logits.clone(), positions).abs() < 1e-6
    assert L.kl_to_baseline(logits, positions, torch.randn(2, 6, 11), positions) > 0.01
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


def test_the_kl_and_prompt_alignment_reductions_on_a_fixed_batch():
    torch.manual_seed(0)
    bridged, baseline = torch.randn(2, 6, 11), torch.randn(2, 6, 11)
    positions = torch.tensor([[2, 3, -1], [1, 2, 3]])  # 5 compared positions over a batch of 2
    per_position = torch.stack([
        F.kl_div(F.log_softmax(bridged[b, p], -1), F.log_softmax(baseline[b, p], -1), log_target=True, reduction="sum")
        for b, p in ((0, 2), (0, 3), (1, 1), (1, 2), (1, 3))
    ])  # fmt: skip
    assert L.kl_to_baseline(bridged, positions, baseline, positions) == pytest.approx(per_position.mean().item(), rel=1e-5)
    batchmean = L.kl_to_baseline(bridged, positions, baseline, positions, reduction="batchmean")
    assert batchmean == pytest.approx(per_position.sum().item() / 2, rel=1e-5)  # the original: summed, over the batch
    soft, prompt = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    squared = ((soft - prompt[:, :3]) ** 2 * mask[:, :3, None]).sum()
    assert L.prompt_alignment(soft, prompt, mask) == pytest.approx(squared.item() / (5 * 8), rel=1e-5)
    assert L.prompt_alignment(soft, prompt, mask, "sum_hidden") == pytest.approx(squared.item() / 5, rel=1e-5)
    aligned_square = (prompt[:, :3] ** 2 * mask[:, :3, None]).sum()
    assert L.prompt_alignment(soft, prompt, mask, "relative") == pytest.approx(squared.item() / aligned_square.item(), rel=1e-5)
    # relative is scale-free: the same tokens at a tenth of the size give the same loss, where mean shrinks 100-fold
    assert L.prompt_alignment(soft / 10, prompt / 10, mask, "relative") == pytest.approx(L.prompt_alignment(soft, prompt, mask, "relative").item(), rel=1e-5)
    assert L.prompt_alignment(soft / 10, prompt / 10, mask) == pytest.approx(squared.item() / (5 * 8) / 100, rel=1e-5)
    with pytest.raises(ValueError, match="'kl_reduction': 'sum' is not allowed"):
        L.kl_to_baseline(bridged, positions, baseline, positions, reduction="sum")


def test_the_schedules_at_a_few_steps():
    cosine, linear = lr_schedule("cosine", 10, 110), lr_schedule("linear", 10, 110)
    assert [round(cosine(step), 4) for step in (0, 9, 10, 60, 110)] == [0.1, 1.0, 1.0, 0.5, 0.0]
    # transformers' linear schedule, the original's: from 0 during the warm-up, then straight down to 0
    assert [round(linear(step), 4) for step in (0, 5, 10, 35, 60, 110, 120)] == [0.0, 0.5, 1.0, 0.75, 0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="'lr_schedule': 'step' is not allowed; allowed: cosine, linear"):
        lr_schedule("step", 10, 110)


def test_the_original_optimiser_has_its_betas_and_a_gate_group_at_three_times_lr(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    ours = Bridge(source, target, settings(), "gsm8k").translator
    optimizer, scheduler = optimizer_and_schedule(ours, settings(lr=1e-3))
    assert [group["betas"] for group in optimizer.param_groups] == [(0.9, 0.999)] * 3
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([1e-3 / 2] * 3)  # warm-up step 0 of 2
    optimizer, scheduler = optimizer_and_schedule(ours, settings(lr=1e-3, adam_betas=[0.9, 0.98], gate_lr_multiplier=3.0, lr_schedule="linear"))
    assert [group["betas"] for group in optimizer.param_groups] == [(0.9, 0.98)] * 3
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01, 0.0, 0.0]
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.5e-3, 0.5e-3, 1.5e-3])  # step 3 of 4, linear
    gates = {id(p) for p in optimizer.param_groups[2]["params"]}
    assert gates == {id(p) for name, p in ours.named_parameters() if name.endswith("_gate")} and gates


def test_the_original_training_layout_and_kl_baseline_change_only_what_they_name(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])[:4]

    def losses(**changes):
        torch.manual_seed(0)
        bridge = Bridge(source, target, settings(kl_weight=1.0, warmup_steps=0, **changes), "gsm8k")
        return {name: float(value.detach()) for name, value in bridge.losses(bridge.translator, rows, step=1).items()}

    ours = losses()
    answer_alone = losses(kl_baseline="answer_alone")
    assert answer_alone["kl"] != pytest.approx(ours["kl"]) and answer_alone["nll"] == ours["nll"]
    batchmean = losses(kl_reduction="batchmean")
    assert batchmean["kl"] > ours["kl"] and batchmean["nll"] == ours["nll"]
    layout = losses(train_layout="answer_alone", train_answer_eos=False)
    assert layout["nll"] != pytest.approx(ours["nll"]) and layout["info_nce"] == ours["info_nce"]
    no_eos = losses(train_answer_eos=False)
    assert no_eos["nll"] != pytest.approx(ours["nll"]) and no_eos["prompt_alignment"] == ours["prompt_alignment"]
    assert losses(prompt_alignment_reduction="sum_hidden")["prompt_alignment"] > ours["prompt_alignment"]
    # the decode loss reconstructs the whole prompt or only its question: another loss, the rest unchanged
    prompt_decode = losses(decode_loss_weight=1.0, decode_interval=1)
    question_decode = losses(decode_loss_weight=1.0, decode_interval=1, decode_target="question")
    assert question_decode["decode"] != pytest.approx(prompt_decode["decode"]) and question_decode["nll"] == prompt_decode["nll"]


def test_prompt_alignment_pulls_each_question_toward_its_own_tokens_or_the_originals_prompt_start(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])[:4]
    k = MICRO_RUN["soft_tokens"]

    def alignment(texts, **changes):
        """The prompt-alignment loss when the soft tokens are the target's embeddings of ``texts``' first K tokens."""
        bridge = Bridge(source, target, settings(**changes), "gsm8k")
        ids = torch.stack([torch.tensor(target.tokenizer(text, add_special_tokens=False)["input_ids"][:k]) for text in texts])
        soft = target.embeddings(ids).detach()
        bridge.soft_tokens = lambda translator, prompts, teacher_texts=None: TranslatorOutput(soft)
        return float(bridge.losses(bridge.translator, rows, step=1)["prompt_alignment"])

    questions, prompts = [soft_question("gsm8k", row) for row in rows], [task_prompt("gsm8k", row) for row in rows]
    assert alignment(questions) < 1e-9 < alignment(prompts)
    assert alignment(prompts, prompt_alignment_target="prompt") < 1e-9 < alignment(questions, prompt_alignment_target="prompt")


@pytest.mark.parametrize("translator", ["cross", "dit"])
def test_soft_tokens_minus_one_trains_and_evaluates_at_the_capped_tokenizer_length(micro_bridge_world, translator):
    """The original's -1: K = the source tokenizer's model_max_length capped at soft_tokens_cap, for every prompt."""
    source, target = frozen_pair(micro_bridge_world)
    run = settings(translator=translator, soft_tokens=-1, soft_tokens_cap=48, warmup_steps=0, kl_weight=1.0)
    bridge = Bridge(source, target, run, "gsm8k")
    rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])[:4]
    values = bridge.losses(bridge.translator, rows, step=1)
    assert all(torch.isfinite(value) for value in values.values())
    examples = eval_examples("gsm8k", load_rows("gsm8k", EMBEDDED, "test", micro_bridge_world["data"]), rows, EVAL, EMBEDDED)
    soft = bridge.translate(bridge.translator.eval(), examples[:2], batch_size=2)[0]
    assert source.tokenizer.model_max_length > 48 and soft.shape[1] == 48


def test_the_original_trains_on_the_evaluation_prompt(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    train_rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])
    shots = train_rows[:2]
    row = train_rows[5]
    assert Bridge(source, target, settings(), "gsm8k", shots).training_prompt(row) == task_prompt("gsm8k", row)
    fewshot = Bridge(source, target, settings(train_prompt="eval"), "gsm8k", shots).training_prompt(row)
    assert fewshot.startswith("Answer the following questions") and shots[1]["question"] in fewshot and row["question"] in fewshot


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



def test_the_originals_losses_start_a_step_later_and_its_decode_loss_after_the_warm_up(micro_bridge_world):
    source, target = frozen_pair(micro_bridge_world)
    rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])[:4]
    terms = dict(kl_weight=1.0, info_nce_weight=1.0, decode_loss_weight=1.0, decode_interval=1, warmup_steps=10)
    started = {}
    for onset in ("ours", "original"):
        bridge = Bridge(source, target, settings(auxiliary_loss_onset=onset, **terms), "gsm8k")
        started[onset] = {step: tuple(name for name in ("kl", "info_nce", "decode") if bridge.losses(bridge.translator, rows, step)[name] > 0)
                          for step in (0, 5, 6, 10, 11)}  # fmt: skip
    assert started["ours"] == {0: ("decode",), 5: ("info_nce", "decode"), 6: ("info_nce", "decode"),
                               10: ("kl", "info_nce", "decode"), 11: ("kl", "info_nce", "decode")}  # fmt: skip
    assert started["original"] == {0: (), 5: (), 6: ("info_nce",), 10: ("info_nce",), 11: ("kl", "info_nce", "decode")}


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
    assert names == {"summary.json", "history.jsonl", "loss_history.csv", "translator.pt", "live_log.csv", "tensorboard",
                     "eval_samples_step_0.jsonl", "eval_samples_step_2.jsonl", "eval_samples_step_4.jsonl", "eval_samples_step_final.jsonl"}
    # the live curves: every step's losses and every evaluation's accuracies, as CSV and TensorBoard events
    live = list(csv.DictReader((tmp_path / "run" / "live_log.csv").open()))
    assert [int(row["step"]) for row in live if row["metric"] == "train/total"] == [1, 2, 3, 4]
    assert [int(row["step"]) for row in live if row["metric"] == "eval/bridged_acc"] == [0, 2, 4]
    assert [float(row["value"]) for row in live if row["metric"] == "final/bridged_acc"] == [summary["final_bridged_acc"]]
    assert list((tmp_path / "run" / "tensorboard" / "micro").glob("events.out.tfevents.*"))
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
    examples = eval_examples("gsm8k", load_rows("gsm8k", EMBEDDED, "test", micro_bridge_world["data"]), train_rows, EVAL, EMBEDDED)
    assert summary["majority_answer"] == majority_answer("gsm8k", train_rows)
    assert summary["majority_acc"] == majority_accuracy("gsm8k", summary["majority_answer"], examples)
    sample = json.loads((tmp_path / "run" / "eval_samples_step_2.jsonl").read_text().splitlines()[0])
    assert list(sample) == ["eval_step", "index", "question", "gold_full_text", "gold_extracted", "source_full",
                            "source_extracted", "target_full", "target_extracted", "bridged_full", "bridged_extracted"]


@pytest.fixture(scope="module")
def four_questions(micro_bridge_world, tmp_path_factory):
    """Four questions, four answers, and a target pre-trained to answer each from its soft slot (its
    world and its baselines' samples): a micro world where a translator can score above 0."""
    tmp_path = tmp_path_factory.mktemp("four_questions")
    rows = [{"question": question, "answer": f"#### {n}"} for question, n in (
        ("Anna has 3 cats.", 3), ("Simon sells 5 boxes.", 5), ("Mark finds 8 keys.", 8), ("Clara buys 12 lamps.", 12)
    )]  # fmt: skip
    data = tmp_path / "data"
    for split in ("train", "test"):
        atomic_write_jsonl(data / "gsm8k" / f"{split}.jsonl", rows)
    documents = [soft_slot_prompt("gsm8k", row, SPECIAL_TOKENS["bos_token"]) + " " + row["answer"] for row in rows]
    (data / "corpus.txt").write_text(DOCUMENT_SEPARATOR.join(documents * 16))
    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000.0)
    training = dict(max_steps=200, batch_size=8, seq_len=64, learning_rate=1e-2, warmup_steps=5, weight_decay=0.0)
    pretrain_model(data / "corpus.txt", micro_bridge_world["data"] / "tokenizer", data / "target", seed=0, model=shape, training=training,
                   architecture="llama", document_separator=DOCUMENT_SEPARATOR)  # fmt: skip
    world = {"data": data, "source": micro_bridge_world["source"], "target": data / "target"}
    four = {**EVAL, "samples": 4}
    samples = {}
    for role, name in (("source", "src"), ("target", "tgt")):
        evaluate_alone(
            model_name=name, model=models(world)[name], dataset="gsm8k", dataset_source=EMBEDDED, embedded_data_dir=data, eval_settings=four,
            metrics_path=tmp_path / f"{name}.json", samples_path=tmp_path / f"{name}.jsonl", config={}, seed=1, device="cpu",
        )  # fmt: skip
        samples[role] = str(tmp_path / f"{name}.jsonl")
    assert json.loads((tmp_path / "tgt.json").read_text())["soft_slot_accuracy"] == 1.0  # the question in its soft slot: answered
    return {"world": world, "samples": samples, "eval": four}


def four_question_run(four_questions, run_dir, **changes) -> dict:
    run = job(four_questions["world"], four_questions["samples"], run_dir, **changes)
    return run_bridge(**{**run, "eval_settings": four_questions["eval"]})


def test_a_run_names_the_evaluation_prompts_its_source_read_cut(micro_bridge_world, baselines, tmp_path):
    """max_prompt_tokens below some prompts' length: the summary counts the prompts the source read only the end of."""
    train_rows = load_rows("gsm8k", EMBEDDED, "train", micro_bridge_world["data"])
    prompts = [e.prompt for e in eval_examples("gsm8k", load_rows("gsm8k", EMBEDDED, "test", micro_bridge_world["data"]), train_rows, EVAL, EMBEDDED)]
    source, _ = frozen_pair(micro_bridge_world)
    full = [len(ids) for ids in source.tokenizer(prompts)["input_ids"]]
    limit = sorted(full)[len(full) // 2]
    read = tokenize_source(source.tokenizer, prompts, limit)["attention_mask"].sum(dim=1).tolist()
    cut = sum(kept < length for kept, length in zip(read, full))
    assert 0 < cut < len(prompts)
    summary = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", max_prompt_tokens=limit, train_steps=2))
    assert summary["source_prompts_cut"] == cut
    assert f"the source read only the end of {cut} of {len(prompts)} evaluation prompts (up to {max(full)} tokens long)" in "; ".join(summary["notes"])


def test_a_soft_plus_text_run_claims_no_compression(micro_bridge_world, baselines, tmp_path):
    summary = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", prompt_mode="soft_plus_text", train_steps=2))
    assert summary["compression"] is None
    assert "prompt_mode soft_plus_text: the target read the whole prompt besides the soft tokens" in "; ".join(summary["notes"])


def test_early_stopping_tracks_the_best_as_the_original_did():
    """The original's loop: the step-0 evaluation is a reference outside early stopping, the best starts
    at 0.0 and only a strictly higher accuracy replaces it (and resets the patience)."""
    translator = torch.nn.Linear(2, 2)
    state = {"best": None, "stale_evals": 0}
    updates = [(step, acc, _early_stop_update(state, {"step": step, "bridged_acc": acc}, translator, patience=2))
               for step, acc in ((0, 0.9), (250, 0.0), (500, 0.4), (750, 0.4), (1000, 0.3))]  # fmt: skip
    assert [stop for _, _, stop in updates[:-1]] == [None] * 4
    assert state["best"]["step"] == 500 and state["best"]["bridged_acc"] == 0.4  # not step 0's 0.9, not the equal 0.4 after it
    assert updates[-1][2] == "early_stop: no new best bridged accuracy for 2 evaluations (best 0.400 at step 500)"
    zeros = {"best": None, "stale_evals": 0}
    assert _early_stop_update(zeros, {"step": 1, "bridged_acc": 0.0}, translator, patience=1).endswith("(none above 0)")
    assert zeros["best"] is None  # nothing kept: the final evaluation reads the last weights, as the original's did


def test_early_stopping_stops_a_run_that_never_scores(micro_bridge_world, baselines, tmp_path):
    summary = run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", train_steps=8, eval_every=1, early_stop_patience=2))
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [row["bridged_acc"] for row in history] == [0.0] * 4  # steps 0, 1, 2 and the final evaluation
    assert summary["trained_steps"] == 2 and summary["stop_reason"].endswith("(none above 0)")
    assert summary["peak_step"] == 1  # the untrained translator is a reference, never the peak
    assert summary["final_weights_read"] == "last"
    assert "final_weights best: no best was kept (no evaluation after step 0 scored above 0)" in "; ".join(summary["notes"])


def test_the_final_evaluation_is_the_evaluation_of_the_weights_it_reads(tmp_path):
    rows = [{"eval_step": "4", "index": index, "bridged_full": "#### 3"} for index in range(2)]
    (tmp_path / "eval_samples_step_4.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    evaluated = {"step": 4, "bridged_acc": 0.5, "soft_token_spread": 0.3, "losses": {"total": 1.0}}
    assert final_evaluation(tmp_path, evaluated) == {"step": "final", "bridged_acc": 0.5, "soft_token_spread": 0.3}
    final = [json.loads(line) for line in (tmp_path / "eval_samples_step_final.jsonl").read_text().splitlines()]
    assert final == [{**row, "eval_step": "final"} for row in rows]


def test_the_final_evaluation_reads_the_weights_final_weights_names(four_questions, tmp_path):
    """'best' reloads a copy of the best translator; 'last' (the original's in effect) evaluates the last weights.
    The four questions' run scores 0.25 until step 50, 0.5 from step 55 and 0.25 again at its last, step 80."""
    answers, summaries = {}, {}
    for choice in ("best", "last"):
        summaries[choice] = four_question_run(four_questions, tmp_path / choice, train_steps=80, warmup_steps=5, eval_every=5,
                                              checkpoint_every=80, lr=1e-2, early_stop_patience=100, final_weights=choice)  # fmt: skip
        answers[choice] = {step: [row["bridged_full"] for row in map(json.loads, (tmp_path / choice / f"eval_samples_step_{step}.jsonl").read_text().splitlines())]
                           for step in (55, 80, "final")}  # fmt: skip
        assert summaries[choice]["settings"]["final_weights"] == choice
        assert (summaries[choice]["peak_step"], summaries[choice]["peak_bridged_acc"]) == (55, 0.5)
    assert summaries["best"]["final_bridged_acc"] == 0.5 and answers["best"]["final"] == answers["best"][55]
    assert summaries["last"]["final_bridged_acc"] == 0.25 and answers["last"]["final"] == answers["last"][80]
    assert summaries["last"]["notes"] and "last weights" in summaries["last"]["notes"][0] and not summaries["best"]["notes"]
    assert (summaries["best"]["final_weights_read"], summaries["last"]["final_weights_read"]) == ("best (step 55)", "last")


def test_a_killed_run_resumes_to_the_same_translator(micro_bridge_world, baselines, tmp_path):
    """SIGKILL after the first checkpoint, re-run: the translator equals an uninterrupted run's."""
    changes = dict(translator="dit", train_steps=16, eval_every=8, checkpoint_every=4, dit_dropout=0.2, early_stop_patience=0, lr=1e-2)

    def start(run_dir):
        return start_bridge_process(job(micro_bridge_world, baselines, run_dir, **changes), tmp_path / f"{run_dir.name}.json")

    checkpoint = kill_after_first_checkpoint(start(tmp_path / "killed"), tmp_path / "killed")
    assert checkpoint is not None and not (tmp_path / "killed" / "summary.json").exists()
    # accelerate's state: the translator, and the RNG streams of every process (CUDA's on a GPU)
    assert (checkpoint / "random_states_0.pkl").exists() and (checkpoint / "training_state.pt").exists()
    at_kill = load_file(checkpoint / "model.safetensors")
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
    # the live log drops what the killed run logged after its checkpoint, so the resumed one matches
    logged = [[(row["step"], row["metric"]) for row in csv.DictReader((tmp_path / run / "live_log.csv").open())] for run in ("killed", "uninterrupted")]
    assert logged[0] == logged[1]
    assert resumed_summary["resume"]["resumes"] == 1 and resumed_summary["resume"]["restarted_because"] is None


def test_a_killed_run_with_changed_settings_starts_afresh(micro_bridge_world, baselines, tmp_path):
    """The issue's scenario: kill after a checkpoint, change the learning rate, rerun: trained from step 0
    at the new rate, as an uninterrupted run at that rate, with none of the first attempt's samples."""
    changes = dict(train_steps=8, eval_every=2, checkpoint_every=4, early_stop_patience=0, lr=1e-2)
    killed = start_bridge_process(job(micro_bridge_world, baselines, tmp_path / "run", **changes), tmp_path / "killed.json")
    assert kill_after_first_checkpoint(killed, tmp_path / "run") is not None
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


def test_a_checkpoint_kept_under_another_early_stopping_rule_is_not_resumed(micro_bridge_world, baselines, tmp_path, monkeypatch):
    """A checkpoint holds the best its code's rule kept; code with another rule starts the run afresh,
    code with the same rule resumes it."""
    from ablation.bridge import training

    changes = dict(train_steps=8, eval_every=2, checkpoint_every=4, early_stop_patience=8, lr=1e-2)
    train_losses = Bridge.losses

    def stop_at_step_6(self, translator, rows, step):
        if step == 6:
            raise RuntimeError("stopped after the step-4 checkpoint")
        return train_losses(self, translator, rows, step)

    def interrupted_then_rerun(run_dir, rule_of_the_interrupted_run):
        with monkeypatch.context() as patch:
            patch.setattr(training, "EARLY_STOPPING_RULE", rule_of_the_interrupted_run)
            patch.setattr(Bridge, "losses", stop_at_step_6)
            with pytest.raises(RuntimeError, match="step-4 checkpoint"):
                run_bridge(**job(micro_bridge_world, baselines, run_dir, **changes))
        assert (run_dir / "checkpoints" / "latest.json").exists()
        return run_bridge(**job(micro_bridge_world, baselines, run_dir, **changes))["resume"]

    same_rule = interrupted_then_rerun(tmp_path / "same_rule", training.EARLY_STOPPING_RULE)
    assert same_rule["resumes"] == 1 and same_rule["restarted_because"] is None
    earlier_rule = interrupted_then_rerun(tmp_path / "earlier_rule", "the best of every evaluation, step 0 included")
    assert earlier_rule["resumes"] == 0 and "settings or inputs changed" in earlier_rule["restarted_because"]


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
    summaries = {name: launch_bridge(job(micro_bridge_world, baselines, tmp_path / name, per_device_batch=batch, lr=1e-2, early_stop_patience=0,
                                         processes=processes), processes=processes)
                 for name, (batch, processes) in runs.items()}  # fmt: skip
    assert summaries["two"]["trained_steps"] == summaries["one"]["trained_steps"] == 4
    assert [summaries[name]["global_batch"] for name in runs] == [4, 4, 2]
    weights = {name: torch.load(tmp_path / name / "translator.pt", weights_only=False)["state_dict"] for name in runs}

    def distance(a, b):
        return sum(float((weights[a][key] - weights[b][key]).abs().sum()) for key in weights[a])

    # DDP averages the halves' mean losses, one process takes the mean over all answer tokens: close, not equal
    assert distance("two", "one") < 0.5 * distance("two", "half")


def test_a_run_launched_on_other_processes_than_its_setting_stops_before_training(micro_bridge_world, baselines, tmp_path):
    with pytest.raises(ValueError, match=r"set to train on 2 processes \(setting 'processes'\), but 1 were launched"):
        run_bridge(**job(micro_bridge_world, baselines, tmp_path / "run", processes=2))
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_translator_trained_on_a_few_questions_reads_them_back(four_questions, tmp_path):
    """A translator that ignores its source hands all four questions the same tokens and scores at
    most the majority floor, 1/4; one that reads the source answers them."""
    summary = four_question_run(four_questions, tmp_path / "run", train_steps=150, warmup_steps=5, eval_every=150, checkpoint_every=150, lr=3e-3)
    assert summary["majority_acc"] == 0.25 and summary["final_bridged_acc"] >= 0.75
