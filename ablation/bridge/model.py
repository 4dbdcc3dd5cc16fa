"""A translator between two frozen LMs: its losses on a training batch, and its bridged generation.

Only the translator has parameters that train; the source and target come frozen from
``frozen.load_frozen``. The run loop around it (optimizer, evaluation schedule, early stopping,
checkpoints) is ``ablation.bridge.training``.
"""

from __future__ import annotations

import logging
import math

import torch

from ablation.bridge import losses as L
from ablation.bridge.batches import (
    answer_positions,
    bridged_inputs,
    generation_inputs,
    kl_baseline_batch,
    kl_baseline_leads,
    lead_text,
    original_prompt_ids,
    original_text_batch,
    prompt_token_ids,
    tokenize_source,
    tokenize_target,
)
from ablation.bridge.data import EvalExample
from ablation.bridge.frozen import FrozenLM, hidden_states
from ablation.bridge.generation import Hygiene, generate_from_embeds
from ablation.bridge.prompts import answer_text, soft_question, training_prompt
from ablation.bridge.settings import ORIGINAL_KL_MAX_TOKENS, ORIGINAL_TEXT_MAX_TOKENS
from ablation.bridge.translators import build_translator, decay_parameter_groups

log = logging.getLogger(__name__)

LOSS_NAMES = ("total", "nll", "kl", "info_nce", "prompt_alignment", "format", "decode", "flow")
EVAL_SEED = 2024  # evaluations sample under their own RNG, so they never shift the training stream
TRANSLATOR_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # setting translator_dtype


def translator_dtype(settings: dict) -> torch.dtype:
    """The dtype of a run's translator weights (``translator_dtype``; a translator saved before the
    setting existed was float32)."""
    name = settings.get("translator_dtype", "float32")
    if name not in TRANSLATOR_DTYPES:
        raise ValueError(f"bridge run setting 'translator_dtype': {name!r} is not allowed; allowed: {', '.join(TRANSLATOR_DTYPES)}")
    return TRANSLATOR_DTYPES[name]


def cast_parameters(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``module`` with its parameters in ``dtype`` and its buffers as they were: the target's embedding
    RMS and the sinusoid frequencies stay float32, as the original computed them outside its bf16 module."""
    for parameter in module.parameters():
        parameter.data = parameter.data.to(dtype)
    return module


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the run stops without writing a summary."""


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate multiplier: linear warm-up, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def warmup_linear(warmup_steps: int, total_steps: int):
    """Learning-rate multiplier of transformers' ``linear`` schedule (the original's): warm-up from
    0, then linear decay to zero at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


LR_SCHEDULES = {"cosine": warmup_cosine, "linear": warmup_linear}


def lr_schedule(name: str, warmup_steps: int, total_steps: int):
    """The multiplier of the schedule a run's ``lr_schedule`` names."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"bridge run setting 'lr_schedule': {name!r} is not allowed; allowed: {', '.join(LR_SCHEDULES)}")
    return LR_SCHEDULES[name](warmup_steps, total_steps)


def optimizer_and_schedule(translator: torch.nn.Module, settings: dict):
    """AdamW over the translator's parameter groups (``adam_betas``, gates at ``gate_lr_multiplier`` × lr) and its ``lr_schedule``."""
    s = settings
    groups = decay_parameter_groups(translator, s["weight_decay"], s["lr"], s["gate_lr_multiplier"])
    optimizer = torch.optim.AdamW(groups, lr=s["lr"], betas=tuple(s["adam_betas"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(s["lr_schedule"], s["warmup_steps"], s["train_steps"]))
    return optimizer, scheduler


def batch_indices(step: int, batch_size: int, rows: int, seed: int) -> list[int]:
    """Rows of ``step``'s global batch: a seeded permutation per epoch, so a resumed run sees the same data."""
    per_epoch = rows // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size].tolist()


class Bridge:
    """A translator between a frozen source and target, with the run's losses and its evaluation."""

    def __init__(self, source: FrozenLM, target: FrozenLM, settings: dict, dataset: str, shots: list[dict] | None = None):
        """``shots``: the evaluation's few-shot examples, which a run with ``train_prompt: eval`` trains on too."""
        self.source, self.target, self.settings, self.dataset = source, target, settings, dataset
        self.shots = shots or []
        # the original's token layout (left padding, BOS labelled, its own prompt ids and KL): batches.original_text_batch
        self.original_layout = settings["token_layout"] == "original"
        self.source_states = None  # a frozen_cache.SourceStates to read instead of running the source
        self.kl_baselines = None  # a frozen_cache.KLBaselines to read instead of the target's baseline forward
        self.translator = build_translator(
            settings,
            source_dim=source.width,
            target_dim=target.width,
            target_embedding=target.embeddings.weight.detach(),
            source_max_length=source.tokenizer.model_max_length,
        ).to(target.model.device)
        self.translator_dtype = translator_dtype(settings)
        cast_parameters(self.translator, self.translator_dtype)
        marker_ids = target.tokenizer("####", add_special_tokens=False)["input_ids"]
        self.marker_ids = set(marker_ids)

    # ---------------------------------------------------------------- translation
    def soft_tokens(self, translator, prompts: list[str], teacher_texts: list[str] | None = None):
        """Translate the source's reading of ``prompts``; a DiT trains against the target's embeddings of ``teacher_texts``."""
        s = self.settings
        device = self.target.model.device
        cached = self.source_states.batch(prompts, device) if self.source_states is not None else None
        if cached is not None:  # read once per cache key (ablation.bridge.frozen_cache)
            states, source_mask = cached
        else:
            padding_side = "left" if self.original_layout else "right"
            source_batch = tokenize_source(self.source.tokenizer, prompts, s["max_prompt_tokens"], padding_side).to(device)
            states = hidden_states(self.source, source_batch, s["source_layer"])  # [B, S, Ds]
            source_mask = source_batch["attention_mask"]
        teacher = teacher_mask = None
        if teacher_texts is not None and s["translator"] == "dit":
            k = self.translator.soft_tokens  # K, with soft_tokens -1 resolved
            if self.original_layout:  # the first K of the left-padded [pad…][BOS text], pads included
                ids, _ = original_prompt_ids(self.target.tokenizer, [text.strip() for text in teacher_texts], ORIGINAL_TEXT_MAX_TOKENS)
                ids = ids[:, :k]
                teacher_mask = torch.ones_like(ids)
            else:
                ids, teacher_mask = prompt_token_ids(self.target.tokenizer, teacher_texts, k)
            teacher = self.target.embeddings(ids.to(device)).detach()  # [B, <=K, Dt]
            teacher, teacher_mask = _pad_to(teacher, teacher_mask.to(device), k)
        # in the weights' dtype: a bf16 translator (translator_dtype) on CPU runs without autocast
        return translator(states.to(self.translator_dtype), source_mask.bool(), teacher=teacher, teacher_mask=teacher_mask)

    # ---------------------------------------------------------------- training
    def training_prompt(self, row: dict) -> str:
        """What the source reads in training (``prompts.training_prompt``)."""
        return training_prompt(self.dataset, row, self.settings["train_prompt"], self.shots)

    def losses(self, translator, rows: list[dict], step: int) -> dict[str, torch.Tensor]:
        """Every loss of one batch, weighted into ``total``; losses not active at ``step`` are zero."""
        s, dataset = self.settings, self.dataset
        device = self.target.model.device
        prompts = [self.training_prompt(row) for row in rows]
        answers = [answer_text(dataset, row) for row in rows]
        teacher_texts = answers if s["dit_teacher"] == "answer" else prompts
        output = self.soft_tokens(translator, prompts, teacher_texts)
        soft = output.soft_tokens.to(self.target.model.dtype)  # [B, K, Dt]
        k = soft.size(1)
        zero = soft.sum() * 0.0
        values = dict.fromkeys(LOSS_NAMES[1:], zero)
        flow_only = s["translator"] == "dit" and step < s["dit_flow_warmup_steps"]
        if output.flow_loss is not None:
            values["flow"] = output.flow_loss
        if not flow_only:
            if self.original_layout:  # [soft tokens][pad…][BOS answer], BOS labelled (batches.original_text_batch)
                target_batch = original_text_batch(self.target.tokenizer, answers, ORIGINAL_TEXT_MAX_TOKENS)
            else:  # the original trained on [soft tokens][BOS answer]: no lead text (train_layout answer_alone)
                leads = [lead_text(dataset, prompt, s["prompt_mode"]) if s["train_layout"] == "lead" else "" for prompt in prompts]
                target_batch = tokenize_target(
                    self.target.tokenizer,
                    leads,
                    answers,
                    max_lead_tokens=s["max_prompt_tokens"],
                    max_answer_tokens=s["max_answer_tokens"],
                    answer_eos=s["train_answer_eos"],
                )
            inputs, attention, labels = bridged_inputs(soft, self.target.embeddings, target_batch)
            logits = self.target.model(inputs_embeds=inputs, attention_mask=attention).logits  # [B, K+T, V]
            values["nll"] = L.token_nll(logits, labels)
            values["format"] = L.marker_nll(logits, labels, torch.cat([torch.zeros(len(rows), k, dtype=torch.bool), target_batch.marker], 1).to(device))
            bridged_positions = answer_positions(target_batch, k, s["kl_tokens"]).to(device)
            self.format_miss_rate = L.format_miss_rate(logits, bridged_positions, self.marker_ids)
            if self.original_layout:  # BOS and the prompt's first tokens, K in all, left padded
                prompt_ids, prompt_mask = original_prompt_ids(self.target.tokenizer, prompts, k)
            else:
                prompt_ids, prompt_mask = prompt_token_ids(self.target.tokenizer, prompts, s["max_prompt_tokens"])
            prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
            prompt_embeds = self.target.embeddings(prompt_ids)  # [B, P, Dt]
            late = s["auxiliary_loss_onset"] == "original"  # each term a step later, the decode loss after warm-up
            if s["kl_weight"] > 0 and _started(step, s["warmup_steps"], late):
                if self.original_layout:
                    values["kl"] = self.original_kl(logits, answers, k)
                else:
                    baseline = self.kl_baseline(kl_baseline_leads(prompts, s), answers)
                    values["kl"] = L.kl_to_log_probs(logits, bridged_positions, *baseline, reduction=s["kl_reduction"])
            if s["info_nce_weight"] > 0 and _started(step, s["warmup_steps"] // 2, late):
                # the original's prompt anchor is a plain mean over its left-padded ids, padding included
                anchor_mask = torch.ones_like(prompt_mask) if self.original_layout else prompt_mask
                values["info_nce"] = L.info_nce(soft, prompt_embeds, anchor_mask, s["info_nce_temperature"])
            if s["prompt_alignment_weight"] > 0:
                aligned_embeds, aligned_mask = prompt_embeds, prompt_mask
                if s["prompt_alignment_target"] == "question":
                    # the question's own first K tokens, not the prompt's (a GSM8K prompt opens with the same instruction every time)
                    questions = [soft_question(dataset, row) for row in rows]
                    question_ids, aligned_mask = (original_prompt_ids if self.original_layout else prompt_token_ids)(self.target.tokenizer, questions, k)
                    aligned_embeds, aligned_mask = self.target.embeddings(question_ids.to(device)), aligned_mask.to(device)
                values["prompt_alignment"] = L.prompt_alignment(soft, aligned_embeds, aligned_mask, s["prompt_alignment_reduction"])
            if s["decode_loss_weight"] > 0 and step % s["decode_interval"] == 0 and (not late or step > s["warmup_steps"]):
                decoded = prompts if s["decode_target"] == "prompt" else [row["question"] for row in rows]
                decode_batch = tokenize_target(self.target.tokenizer, [""] * len(rows), [" " + text for text in decoded],
                                               max_lead_tokens=1, max_answer_tokens=s["max_prompt_tokens"])
                decode_inputs, decode_attention, decode_labels = bridged_inputs(soft, self.target.embeddings, decode_batch)
                decode_logits = self.target.model(inputs_embeds=decode_inputs, attention_mask=decode_attention).logits
                values["decode"] = L.token_nll(decode_logits, decode_labels)
        weights = {
            "nll": s["nll_weight"], "kl": s["kl_weight"], "info_nce": s["info_nce_weight"],
            "prompt_alignment": s["prompt_alignment_weight"], "format": s["format_loss_weight"],
            "decode": s["decode_loss_weight"], "flow": s["dit_loss_weight"],
        }  # fmt: skip
        if flow_only:
            weights = {name: (1.0 if name == "flow" else 0.0) for name in weights}
        values["total"] = sum(weights[name] * values[name] for name in weights)
        return values

    def original_kl(self, logits: torch.Tensor, answers: list[str], k: int) -> torch.Tensor:
        """The original's KL (``token_layout: original``): the bridged logits at the first
        ``kl_tokens`` positions after the soft tokens against the target's own at the same positions
        of the left-padded [pad…][BOS answer] (cut at its kl_max_length): padding positions included."""
        s, device = self.settings, self.target.model.device
        batch = original_text_batch(self.target.tokenizer, answers, ORIGINAL_KL_MAX_TOKENS)
        with torch.no_grad():
            baseline_logits = self.target.model(input_ids=batch.ids.to(device), attention_mask=batch.attention.to(device)).logits
        count = min(s["kl_tokens"], baseline_logits.size(1), logits.size(1) - k)
        positions = torch.arange(count, device=device).expand(logits.size(0), count)
        return L.kl_to_baseline(logits, k + positions, baseline_logits, positions, reduction=s["kl_reduction"])

    def kl_baseline(self, leads: list[str], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen target's log-probabilities at the first ``kl_tokens`` answer positions after
        ``leads`` and their valid mask, from its logits there: read from the KL-baseline cache, else
        computed here."""
        s, device = self.settings, self.target.model.device
        at_answer = self.kl_baselines.batch(leads, answers, s["kl_tokens"], device) if self.kl_baselines is not None else None
        if at_answer is None:
            batch = kl_baseline_batch(self.target.tokenizer, leads, answers, s)
            with torch.no_grad():
                logits = self.target.model(input_ids=batch.ids.to(device), attention_mask=batch.attention.to(device)).logits
            at_answer = L.gather_positions(logits, answer_positions(batch, 0, s["kl_tokens"]).to(device))
        return L.baseline_log_probs(*at_answer)

    # ---------------------------------------------------------------- evaluation
    def translate(self, translator, examples: list[EvalExample], *, batch_size: int) -> list[torch.Tensor]:
        """The soft tokens of ``examples``, one [B, K, D] tensor per batch; the DiT samples from a fixed seed."""
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            return [
                self.soft_tokens(translator, [example.prompt for example in examples[start : start + batch_size]]).soft_tokens
                for start in range(0, len(examples), batch_size)
            ]

    def generate(
        self, translator, examples: list[EvalExample], *, batch_size: int, max_new_tokens: int, hygiene: Hygiene | None = None,
        measure_cache: bool = False,
    ) -> list:
        """Bridged greedy answers to ``examples``, translation included (what the inference benchmark times)."""
        soft_batches = self.translate(translator, examples, batch_size=batch_size)
        return self.generate_from_soft(soft_batches, examples, max_new_tokens=max_new_tokens, hygiene=hygiene, measure_cache=measure_cache)

    def generate_from_soft(
        self, soft_batches: list[torch.Tensor], examples: list[EvalExample], *, max_new_tokens: int, hygiene: Hygiene | None = None,
        measure_cache: bool = False,
    ) -> list:
        """Greedy answers to ``examples`` from their soft tokens (``translate``'s batches), under the run's hygiene (or ``hygiene``)."""
        s = self.settings
        hygiene = hygiene or Hygiene(s["repetition_penalty"], s["stop_after_answer"])
        generations = []
        start = 0
        with torch.no_grad():
            for soft in soft_batches:
                prompts = [example.prompt for example in examples[start : start + soft.size(0)]]
                start += soft.size(0)
                leads = [lead_text(self.dataset, prompt, s["prompt_mode"]) for prompt in prompts]
                inputs, attention = generation_inputs(soft, self.target.embeddings, self.target.tokenizer, leads, s["max_prompt_tokens"])
                generations += generate_from_embeds(
                    self.target.model, self.target.tokenizer, inputs.to(self.target.model.dtype), attention,
                    dataset=self.dataset, hygiene=hygiene, max_new_tokens=max_new_tokens, measure_cache=measure_cache,
                )  # fmt: skip
        return generations


def _started(step: int, start: int, late: bool) -> bool:
    """Whether a loss that starts at ``start`` is on at ``step``: from ``start`` (ours), or from the
    step after it (``late``: the original's ``step > start``)."""
    return step > start if late else step >= start


def _pad_to(tokens: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad [B, T, D] tokens and their [B, T] mask with zeros to ``length`` positions."""
    missing = length - tokens.size(1)
    if missing <= 0:
        return tokens[:, :length], mask[:, :length]
    return (
        torch.nn.functional.pad(tokens, (0, 0, 0, missing)),
        torch.nn.functional.pad(mask, (0, missing)),
    )
