"""Pre-train the tiny world's LMs: the prefill study's base model and the bridge's source and target.

Each model is a real `MistralForCausalLM` or `LlamaForCausalLM` (RoPE, RMSNorm,
SwiGLU, grouped-query attention) shrunk to CPU size, trained with the stock HF
`Trainer`, so every later stage (attention-mask ablations, fine-tuning, lm-eval,
the bridge) exercises the same code paths a real checkpoint would.  Documents
are packed into fixed length blocks with EOS between them; training is fp32 and
seeded.  The bridge's two LMs are trained by the same code on the bridge corpus
with their own tokenizers and widths, so they differ in family, vocabulary and
width as the real study's Mistral and Llama do.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from ablation.io import atomic_directory
from .validation import require_int, require_positive, require_positive_number

log = logging.getLogger(__name__)

MODEL_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rope_theta",
)
TRAINING_KEYS = ("max_steps", "batch_size", "seq_len", "learning_rate", "warmup_steps", "weight_decay")
SUMMARY_FILE = "pretrain_summary.json"
MODEL_CLASSES = {"mistral": MistralForCausalLM, "llama": LlamaForCausalLM}


def pretrain_model(
    corpus_path: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    model: dict,
    training: dict,
    architecture: str = "mistral",
    document_separator: str = "\n\n",
) -> dict:
    """Train from scratch and save model + tokenizer + summary into `out_dir`.

    `architecture` is a key of `MODEL_CLASSES`; `document_separator` is what
    separates the corpus's documents.
    """
    if architecture not in MODEL_CLASSES:
        raise ValueError(f"architecture must be one of {sorted(MODEL_CLASSES)}, got {architecture!r}")
    require_int(seed=seed)
    validate_model(model)
    validate_training(training, model)
    corpus = Path(corpus_path)
    if not corpus.is_file():
        raise ValueError(f"corpus_path {str(corpus)!r} is not a file")

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    blocks = pack_corpus(corpus.read_text(encoding="utf-8"), tokenizer, training["seq_len"], document_separator)
    log.info("packed corpus into %d blocks of %d tokens", len(blocks), training["seq_len"])

    set_seed(seed)
    net = MODEL_CLASSES[architecture](build_config(model, tokenizer, architecture))
    n_params = sum(p.numel() for p in net.parameters())
    log.info("model has %d parameters", n_params)

    with atomic_directory(out_dir) as tmp:
        losses, wall = _train(net, blocks, training, seed, tmp / "_trainer")
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        net.save_pretrained(tmp)
        # lm-eval and generation read the usable context length from here too.
        tokenizer.model_max_length = model["max_position_embeddings"]
        tokenizer.save_pretrained(tmp)
        summary = {
            "initial_train_loss": losses[0],
            "final_train_loss": losses[-1],
            "steps": training["max_steps"],
            "wall_seconds": round(wall, 2),
            "tokens_seen": training["max_steps"] * training["batch_size"] * training["seq_len"],
            "parameters": n_params,
            "corpus_tokens": int(blocks.numel()),
        }
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("pre-training done: %s", summary)
    return summary


def validate_model(model: dict) -> None:
    """Check the architecture dict; ValueError names the bad key."""
    _require_keys("model", model, MODEL_KEYS)
    require_positive(**{f"model.{k}": model[k] for k in MODEL_KEYS if k != "rope_theta"})
    require_positive_number(**{"model.rope_theta": model["rope_theta"]})
    if model["hidden_size"] % model["num_attention_heads"]:
        raise ValueError("model.hidden_size must be divisible by model.num_attention_heads")
    if model["num_attention_heads"] % model["num_key_value_heads"]:
        raise ValueError("model.num_attention_heads must be divisible by model.num_key_value_heads")


def validate_training(training: dict, model: dict) -> None:
    """Check the training dict; ValueError names the bad key."""
    _require_keys("training", training, TRAINING_KEYS)
    require_positive(**{f"training.{k}": training[k] for k in ("max_steps", "batch_size", "seq_len")})
    if training["seq_len"] > model["max_position_embeddings"]:
        raise ValueError("training.seq_len must not exceed model.max_position_embeddings")
    require_positive_number(**{"training.learning_rate": training["learning_rate"]})
    warmup = training["warmup_steps"]
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"training.warmup_steps must be a non-negative integer, got {warmup!r}")
    wd = training["weight_decay"]
    if isinstance(wd, bool) or not isinstance(wd, (int, float)) or wd < 0:
        raise ValueError(f"training.weight_decay must be a non-negative number, got {wd!r}")


def _require_keys(name: str, given: dict, expected: tuple[str, ...]) -> None:
    if not isinstance(given, dict):
        raise ValueError(f"{name} must be a dict, got {type(given).__name__}")
    missing = [k for k in expected if k not in given]
    unknown = sorted(set(given) - set(expected))
    if missing or unknown:
        raise ValueError(f"{name} has missing keys {missing} / unknown keys {unknown}")


def build_config(model: dict, tokenizer: PreTrainedTokenizerBase, architecture: str = "mistral") -> MistralConfig | LlamaConfig:
    """Config of the tiny model; Mistral gets full causal attention (no sliding window)."""
    shared = dict(
        vocab_size=len(tokenizer),
        hidden_size=model["hidden_size"],
        intermediate_size=model["intermediate_size"],
        num_hidden_layers=model["num_hidden_layers"],
        num_attention_heads=model["num_attention_heads"],
        num_key_value_heads=model["num_key_value_heads"],
        max_position_embeddings=model["max_position_embeddings"],
        rope_parameters={"rope_type": "default", "rope_theta": float(model["rope_theta"])},
        # Tied embeddings halve the parameter count of a vocab-dominated tiny model.
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )
    if architecture == "llama":
        return LlamaConfig(**shared)
    return MistralConfig(**shared, sliding_window=None)


def pack_corpus(text: str, tokenizer: PreTrainedTokenizerBase, seq_len: int, separator: str = "\n\n") -> torch.Tensor:
    """Token blocks [n, seq_len] of the documents (blank-line separated unless `separator` says otherwise).

    Documents are packed as "<s> doc </s>" and every block also starts with
    BOS, as every evaluation prompt does (the tokenizer prepends it).  The model
    therefore learns BOS as its attention sink, like Llama/Mistral models do.
    """
    docs = [d for d in text.split(separator) if d.strip()]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend([bos, *enc, eos])
    n_blocks = len(ids) // seq_len
    if n_blocks == 0:
        raise ValueError(f"corpus has {len(ids)} tokens, fewer than training.seq_len={seq_len}")
    blocks = torch.tensor(ids[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)
    # Overwriting the first token loses nothing: position 0 is never a prediction target.
    blocks[:, 0] = bos
    return blocks


class _Blocks(torch.utils.data.Dataset):
    """Packed blocks as causal-LM examples (labels = inputs; the model shifts)."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


class _LossLog(TrainerCallback):
    """Collect logged losses and forward progress to this module's logger."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
            log.info("step %d/%d loss %.4f", state.global_step, state.max_steps, logs["loss"])


def _train(net: PreTrainedModel, blocks: torch.Tensor, training: dict, seed: int, work_dir: Path) -> tuple[list[float], float]:
    """Run the HF Trainer; return logged losses and wall seconds."""
    steps = training["max_steps"]
    args = TrainingArguments(
        output_dir=str(work_dir),
        max_steps=steps,
        per_device_train_batch_size=training["batch_size"],
        learning_rate=training["learning_rate"],
        warmup_steps=training["warmup_steps"],
        weight_decay=training["weight_decay"],
        lr_scheduler_type="cosine",
        optim="adamw_torch",
        # ~20 log points whatever the run length; the first step gives the initial loss.
        logging_steps=max(1, steps // 20),
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=seed,
        data_seed=seed,
        dataloader_pin_memory=False,
        disable_tqdm=True,
    )
    callback = _LossLog()
    trainer = Trainer(model=net, args=args, train_dataset=_Blocks(blocks), callbacks=[callback])
    # With tqdm disabled the Trainer prints every log dict to stdout; _LossLog logs instead.
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return callback.losses, time.perf_counter() - start
