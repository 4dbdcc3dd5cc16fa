"""One fine-tuning run on the HF Trainer: resumable, auto-stopping, safely saved, summarised.

Run directory layout::

    checkpoints/checkpoint-N/   periodic Trainer checkpoints; a re-run with the same settings resumes from
                                the last complete one (ablation.resume); deleted at the end unless keep_checkpoints
    checkpoints.resume.json     the hash of the settings and inputs the checkpoints were written under
    tensorboard/                TensorBoard event files (config 'tracking' lists tensorboard)
    loss_history.csv            step, epoch, elapsed seconds, train/eval loss, learning rate (rewritten live)
    final/                      the fine-tuned model and tokenizer, written atomically at the end
    summary.json                metrics, stop reason and provenance, written last
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from transformers import Trainer, TrainingArguments
from transformers.integrations import TensorBoardCallback

from ablation.checkpoints import save_final_model
from ablation.prefill.finetune.callbacks import (
    AUTO_STOP_MODES,
    KILL_MODES,
    EvalLossPlateauStop,
    LossHistoryWriter,
    NoLearningStop,
    NonFiniteLossGuard,
    StopRecord,
    ThroughputMeter,
    check_mode,
    eval_losses,
    history_csv,
    logs_first_step,
    train_losses,
)
from ablation.prefill.finetune.data import (
    EMPTY_RESPONSES,
    LONG_ROWS,
    DataPreparation,
    PromptAwareCollator,
    load_instruction_splits,
    tokenize_records,
)
from ablation.prefill.finetune.hub import run_card, upload_run
from ablation.prefill.finetune.replay import corpus_documents, replay_examples
from ablation.prefill.finetune.training_mask import masked_model_inputs
from ablation.io import atomic_write_json, atomic_write_text
from ablation.models import load_causal_lm, load_tokenizer
from ablation.provenance import model_identity, provenance
from ablation.references import is_local_reference
from ablation.io import file_sha256, settings_sha256
from ablation.layout import FINAL_MODEL_DIR, LOSS_HISTORY_FILE, SUMMARY_FILE
from ablation.resume import claim_checkpoint
from ablation.prefill.study import check_train_mask
from ablation.tracking import configured_trackers

log = logging.getLogger(__name__)

OPTIMIZERS = ("adafactor", "adamw_torch")
SCHEDULERS = ("cosine", "constant_with_warmup", "linear")
PRECISIONS = ("fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """Hyper-parameters of one run; the schema (workflow/schemas) documents each and holds the defaults."""

    train_mask: str
    train_samples: int
    eval_samples: int
    eval_fraction: float
    max_seq_len: int
    max_steps: int
    per_device_batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    optimizer: str
    lr_scheduler: str
    precision: str
    gradient_checkpointing: bool
    eval_steps: int
    save_steps: int
    logging_steps: int
    replay_fraction: float = 0.0
    strip_fields: bool = False
    prompt_bos: bool = True
    long_rows: str = "skip"
    empty_responses: str = "skip"
    data_split_seed: int | None = None  # None: the run seed
    kill_if_no_learning: dict | None = None
    auto_stop: dict | None = None
    hub_repo_id: str | None = None
    keep_checkpoints: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        check_train_mask(self.train_mask)
        for name, value, allowed in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("lr_scheduler", self.lr_scheduler, SCHEDULERS),
            ("precision", self.precision, PRECISIONS),
            ("long_rows", self.long_rows, LONG_ROWS),
            ("empty_responses", self.empty_responses, EMPTY_RESPONSES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        for name, rule, allowed in (
            ("kill_if_no_learning", self.kill_if_no_learning, KILL_MODES),
            ("auto_stop", self.auto_stop, AUTO_STOP_MODES),
        ):
            if rule:
                check_mode(f"{name}.mode", rule.get("mode"), allowed)

    @property
    def data_preparation(self) -> DataPreparation:
        return DataPreparation(self.strip_fields, self.prompt_bos, self.long_rows, self.empty_responses)

    @classmethod
    def merged(cls, *layers: dict) -> FinetuneSettings:
        """Settings from layered dicts (schema defaults < config defaults < run overrides)."""
        merged: dict = {}
        for layer in layers:
            merged.update(layer)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"unknown fine-tune setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**merged)


class PromptMaskTrainer(Trainer):
    """Trainer whose every forward (train and eval) uses the run's training mask."""

    def __init__(self, *args, train_mask: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.train_mask = check_train_mask(train_mask)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = masked_model_inputs(self.model.config, inputs, self.train_mask, self.model.dtype)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def last_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json exists (the Trainer writes it last)."""
    complete = [path for path in checkpoints_dir.glob("checkpoint-*") if (path / "trainer_state.json").is_file()]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


# settings that change neither the weights nor the metrics, so a checkpoint written under other values still resumes
NOT_RESULT_SETTINGS = ("description", "hub_repo_id", "keep_checkpoints")


def result_inputs_sha256(settings: FinetuneSettings, base_model_id, base_model_revision, dataset, replay_corpus, seed, attn_implementation) -> str:
    """The hash a checkpoint must match to be resumed: the settings and inputs that determine the run's result."""
    result_settings = {key: value for key, value in dataclasses.asdict(settings).items() if key not in NOT_RESULT_SETTINGS}
    return settings_sha256({
        "settings": result_settings,
        "base_model": model_identity(base_model_id, base_model_revision),
        "dataset": file_sha256(dataset) if is_local_reference(dataset) and Path(dataset).is_file() else dataset,
        # a missing corpus is named by the replay code below
        "replay_corpus": file_sha256(replay_corpus) if settings.replay_fraction > 0 and replay_corpus and Path(replay_corpus).is_file() else None,
        "seed": seed,
        "attn_implementation": attn_implementation,
        "world_size": world_size(),
    })  # fmt: skip


def world_size() -> int:
    """Processes of a distributed launch (``accelerate launch`` sets WORLD_SIZE), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_per_process(settings: FinetuneSettings, processes: int) -> int:
    """Gradient accumulation that keeps the effective batch of a one-process run constant."""
    if settings.gradient_accumulation_steps % processes:
        raise ValueError(
            f"gradient_accumulation_steps {settings.gradient_accumulation_steps} is not divisible by {processes} "
            "processes, so the effective batch cannot stay the same; pick a multiple"
        )
    return settings.gradient_accumulation_steps // processes


def training_arguments(settings: FinetuneSettings, run_dir: Path, seed: int, device: str, trackers: tuple[str, ...] | list[str] = ()) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=accumulation_per_process(settings, world_size()),
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=math.ceil(settings.warmup_ratio * settings.max_steps),
        optim=settings.optimizer,
        lr_scheduler_type=settings.lr_scheduler,
        bf16=settings.precision == "bf16",
        activation_checkpointing=settings.gradient_checkpointing,
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        logging_steps=settings.logging_steps,
        logging_first_step=logs_first_step(settings.kill_if_no_learning),
        logging_nan_inf_filter=False,  # a NaN must reach the guard, not be averaged away
        include_num_input_tokens_seen="non_padding",
        seed=seed,
        data_seed=seed,
        # config 'tracking' through transformers' integrations; TensorBoard is attached explicitly, with our directory
        report_to=[tracker for tracker in trackers if tracker != "tensorboard"] or "none",
        remove_unused_columns=False,  # the collator's prompt_lengths drive the mask
        label_names=["labels"],
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_finetune(
    *,
    run_name: str,
    base_model_id: str,
    dataset: str,
    settings: FinetuneSettings,
    run_dir: str | Path,
    config: dict,
    seed: int,
    attn_implementation: str = "sdpa",
    device: str = "cpu",
    base_model_revision: str | None = None,
    replay_corpus: str | Path | None = None,
) -> dict | None:
    """Fine-tune ``base_model_id`` on ``dataset`` (a JSONL path or hub id); resume if checkpoints exist.

    Returns the summary (None on the non-main processes of a distributed launch).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    claim = claim_checkpoint(
        run_dir / "checkpoints",
        result_inputs_sha256(settings, base_model_id, base_model_revision, dataset, replay_corpus, seed, attn_implementation),
        job=f"fine-tune {run_name}",
        attempt_files=[run_dir / "tensorboard", run_dir / LOSS_HISTORY_FILE],
        main_process=int(os.environ.get("RANK", "0")) == 0,
    )
    tokenizer = load_tokenizer(base_model_id, base_model_revision)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    split_seed = seed if settings.data_split_seed is None else settings.data_split_seed
    train_records, eval_records = load_instruction_splits(
        dataset,
        seed=split_seed,
        train_samples=settings.train_samples,
        eval_samples=settings.eval_samples,
        eval_fraction=settings.eval_fraction,
    )
    preparation = settings.data_preparation
    train = tokenize_records(train_records, tokenizer, settings.max_seq_len, preparation)
    evaluation = tokenize_records(eval_records, tokenizer, settings.max_seq_len, preparation)
    instruction_rows = len(train.examples)
    if settings.replay_fraction > 0:
        if replay_corpus is None:
            raise ValueError(f"fine-tune run {run_name!r} has replay_fraction {settings.replay_fraction} but no replay corpus (config key 'finetune.replay_corpus')")
        replayed = round(instruction_rows * settings.replay_fraction / (1 - settings.replay_fraction))
        train.examples.extend(replay_examples(corpus_documents(replay_corpus), tokenizer, replayed, settings.max_seq_len, seed))
        log.info("replaying %d pre-training documents beside %d instruction rows", replayed, instruction_rows)

    model = load_causal_lm(
        base_model_id,
        revision=base_model_revision,
        dtype="bfloat16" if settings.precision == "bf16" else "float32",
        attn_implementation=attn_implementation,
        quantized_weights="dequantized",  # the Trainer updates floats: an FP8 checkpoint becomes the run's precision
    ).train()
    record, throughput = StopRecord(), ThroughputMeter()
    callbacks = [
        record,
        throughput,
        NonFiniteLossGuard(),
        LossHistoryWriter(run_dir / LOSS_HISTORY_FILE),
    ]
    trackers = configured_trackers(config)
    if "tensorboard" in trackers:
        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "tensorboard"))))
    if settings.kill_if_no_learning:
        callbacks.append(NoLearningStop(**settings.kill_if_no_learning, record=record))
    if settings.auto_stop:
        callbacks.append(
            EvalLossPlateauStop(
                patience=settings.auto_stop["patience_evals"],
                min_delta=settings.auto_stop["min_delta"],
                min_steps=settings.auto_stop["min_steps"],
                mode=settings.auto_stop["mode"],
                record=record,
            )
        )
    trainer = PromptMaskTrainer(
        model=model,
        args=training_arguments(settings, run_dir, seed, device, trackers),
        train_dataset=train.examples,
        eval_dataset=evaluation.examples,
        data_collator=PromptAwareCollator(tokenizer.pad_token_id),
        callbacks=callbacks,
        train_mask=settings.train_mask,
    )
    resume_from = last_complete_checkpoint(run_dir / "checkpoints") if claim.resumable else None
    if resume_from is not None:
        log.info("resuming %s from %s", run_name, resume_from)
        claim.resumed(resume_from.name)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    if not eval_losses(state) or eval_losses(state)[-1][0] != state.global_step:
        trainer.evaluate()  # the summary reports the eval loss of the final weights
    if not trainer.is_world_process_zero():
        return None  # in a distributed launch the main process alone writes the outputs
    atomic_write_text(run_dir / LOSS_HISTORY_FILE, history_csv(state.log_history))

    saved_format = save_final_model(trainer.model, tokenizer, run_dir / FINAL_MODEL_DIR, base_model_id, base_model_revision)
    losses = [loss for _, loss in eval_losses(state)]
    summary = {
        "run": run_name,
        "description": settings.description,
        "train_mask": settings.train_mask,
        "settings": dataclasses.asdict(settings),
        "max_steps": settings.max_steps,
        "steps_run": state.global_step,
        "resumed_from_step": int(resume_from.name.split("-")[-1]) if resume_from else None,
        "resume": claim.summary(),
        "epochs": state.epoch,
        "stop_reason": record.reason,
        "stop_detail": record.detail,
        "train_loss": train_losses(state)[-1][1] if train_losses(state) else None,
        "final_eval_loss": losses[-1],
        "best_eval_loss": min(losses),
        "train_records": len(train.examples),
        "replay_records": len(train.examples) - instruction_rows,
        "replay_corpus": str(replay_corpus) if settings.replay_fraction > 0 else None,
        "eval_records": len(evaluation.examples),
        "skipped_empty_response": train.skipped_empty_response + evaluation.skipped_empty_response,
        "skipped_too_long": train.skipped_too_long + evaluation.skipped_too_long,
        "truncated": train.truncated + evaluation.truncated,
        "data_preparation": {**dataclasses.asdict(preparation), "data_split_seed": split_seed},
        "tokens_seen": int(state.num_input_tokens_seen),
        "train_seconds": throughput.seconds,
        "seconds_per_step": throughput.seconds_per_step,
        "tokens_per_second": throughput.tokens_per_second,
        "peak_memory_mb": peak_memory_mb(),
        "saved_format": saved_format,
        "provenance": provenance(
            model_id=base_model_id,
            revision=base_model_revision,
            mask=settings.train_mask,
            config=config,
            seed=seed,
            wall_seconds=throughput.earlier_attempts_seconds + time.perf_counter() - started,  # all attempts, as train_seconds
            weights=model.weights_provenance,
        ),
    }
    if settings.hub_repo_id:
        final_dir = run_dir / FINAL_MODEL_DIR
        card = run_card(summary, run_name=run_name, dataset=str(dataset), results_dir=run_dir.parent.parent, final_dir=final_dir)
        summary["hub_upload"] = upload_run(final_dir, summary, settings.hub_repo_id, run_name, card)
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    claim.finish(keep=settings.keep_checkpoints)
    log.info("%s: %d steps, stop reason %s, eval loss %.4f", run_name, state.global_step, record.reason, losses[-1])
    return summary
