"""Fine-tuning throughput: prefix-LM (prefill_bidir) training against causal training, and our
vectorised mask against the original study's dense Python-loop collator mask, in one process.

Every condition trains the same tiny model from the same weights on the same batches, in
alternating rounds so machine noise hits all of them alike. Tokens/s counts non-pad tokens.
On a CUDA GPU the model is also trained in bf16 with flex_attention, and model FLOPs
utilisation is reported.

Usage (after `snakemake --cores 2` built the tiny world):
    .venv/bin/python bench/train_throughput.py [--world results/world] [--steps 20] [--rounds 3]
The last output line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from ablation.prefill.finetune.data import DataPreparation, PromptAwareCollator, load_instruction_splits, tokenize_records  # noqa: E402
from ablation.prefill.finetune.training_mask import masked_model_inputs  # noqa: E402
from ablation.models import load_causal_lm, load_tokenizer  # noqa: E402
from ablation.prefill.original.scorer import dense_loop_prefix_lm_mask  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0, "RTX 3090": 71.0}


def dense_loop_inputs(config, batch, dtype):
    """The original's path: mask built per batch in the collator by Python loops."""
    mask = dense_loop_prefix_lm_mask(batch["prompt_lengths"].tolist(), batch["attention_mask"], dtype)
    return {"input_ids": batch["input_ids"], "attention_mask": mask.to(batch["input_ids"].device), "labels": batch["labels"]}


CONDITIONS = {
    "causal": lambda config, batch, dtype: masked_model_inputs(config, batch, "causal", dtype),
    "prefill_bidir": lambda config, batch, dtype: masked_model_inputs(config, batch, "prefill_bidir", dtype),
    "prefill_bidir_dense_loop": dense_loop_inputs,
}


def train_steps(model, batches, make_inputs, device) -> tuple[float, int]:
    """Seconds and non-pad tokens for one optimiser step per batch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens, started = 0, time.perf_counter()
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items()}
        loss = model(**make_inputs(model.config, batch, model.dtype)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, tokens


def measure(model_dir: Path, batches, rounds: int, device: str, dtype: str, attn: str, conditions) -> dict:
    model = load_causal_lm(str(model_dir), dtype=dtype, attn_implementation=attn, device=device).train()
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    totals = {name: [0.0, 0] for name in conditions}
    train_steps(model, batches[:2], CONDITIONS["causal"], device)  # warm-up: allocations, kernels
    for _ in range(rounds):
        for name in conditions:
            model.load_state_dict(initial)
            seconds, tokens = train_steps(model, batches, CONDITIONS[name], device)
            totals[name][0] += seconds
            totals[name][1] += tokens
    parameters = sum(p.numel() for p in model.parameters())
    return {name: {"seconds": s, "tokens": t, "tokens_per_s": t / s, "parameters": parameters} for name, (s, t) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("results/world"))
    parser.add_argument("--steps", type=int, default=20, help="batches per condition per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=256)
    arguments = parser.parse_args()
    model_dir = arguments.world / "base_model"
    if not model_dir.is_dir():
        raise SystemExit(f"{model_dir} not found: build the tiny world first with `snakemake --cores 2`")

    tokenizer = load_tokenizer(str(model_dir))
    records, _ = load_instruction_splits(
        str(arguments.world / "instructions.jsonl"), seed=0,
        train_samples=arguments.steps * arguments.batch_size, eval_samples=1, eval_fraction=0.05,
    )
    preparation = DataPreparation(strip_fields=False, prompt_bos=True, long_rows="skip", empty_responses="skip")
    examples = tokenize_records(records, tokenizer, arguments.max_seq_len, preparation).examples
    collate = PromptAwareCollator(tokenizer.pad_token_id or 0)
    batches = [collate(examples[i : i + arguments.batch_size]) for i in range(0, len(examples), arguments.batch_size)]

    results = {"cpu_fp32": measure(model_dir, batches, arguments.rounds, "cpu", "float32", "sdpa", CONDITIONS)}
    if torch.cuda.is_available():
        gpu = measure(model_dir, batches, arguments.rounds, "cuda", "bfloat16", "flex_attention", ("causal", "prefill_bidir"))
        name = torch.cuda.get_device_name()
        peak = next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)
        for figures in gpu.values():
            figures["mfu"] = 6 * figures["parameters"] * figures["tokens_per_s"] / (peak * 1e12) if peak else None
        results[f"cuda_bf16_flex ({name})"] = gpu

    print(f"{'setting':<28}{'condition':<28}{'tokens/s':>12}{'vs causal':>11}")
    for setting, figures in results.items():
        for condition, run in figures.items():
            ratio = run["tokens_per_s"] / figures["causal"]["tokens_per_s"]
            print(f"{setting:<28}{condition:<28}{run['tokens_per_s']:>12.0f}{ratio:>10.3f}x")
    cpu = results["cpu_fp32"]
    summary = {
        "prefix_vs_causal_tokens_per_s": cpu["prefill_bidir"]["tokens_per_s"] / cpu["causal"]["tokens_per_s"],
        "ours_vs_dense_loop_tokens_per_s": cpu["prefill_bidir"]["tokens_per_s"] / cpu["prefill_bidir_dense_loop"]["tokens_per_s"],
        "threads": torch.get_num_threads(),
        "results": results,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
