"""GPU readiness in one command: the checks a lent CUDA GPU is for, in minutes, one JSON line last.

1. masks: flex_attention (BlockMask) against sdpa (4-D mask), the same random Ministral-3 weights
   in fp32: the largest per-token log-prob difference in each mask mode, and the training loss
   under ``causal`` and ``prefill_bidir``.
2. eval: bf16 requests/s of the scorer (multiple-choice-shaped requests, shared prefill) under
   ``causal`` and ``prefill_bidir`` on a mid-size random Ministral-3 text model.
3. train: bf16 tokens/s of AdamW steps under ``causal`` and ``prefill_bidir``, sdpa and
   flex_attention, with model FLOPs utilisation (6 x matmul parameters x tokens/s over the GPU's
   dense bf16 peak).
4. fp8: a miniature of the real checkpoint (Mistral-3: ministral3 + pixtral) in the hub's FP8
   layout (128x128 blocks): the dequantized bf16 load, the native FP8 load against it where the
   GPU and the ``kernels`` package allow, and a few Trainer steps of the dequantize-for-training
   path (``run_finetune``) with its float save.

Everything is built in the process (a micro tiny world, random weights): nothing is downloaded
and no world needs building first. A check that fails is reported with its error and the others
still run; the exit status is 1 when any check failed or disagreed.

Usage:
    .venv/bin/python bench/gpu_readiness.py [--device cuda] [--hidden-size 2048 --layers 8]
On a machine without CUDA it runs the same checks on CPU at small sizes (native FP8 and MFU are
reported as unavailable): slow, but enough to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import Mistral3Config, Mistral3ForConditionalGeneration  # noqa: E402
from transformers.models.ministral3 import Ministral3Config, Ministral3ForCausalLM  # noqa: E402
from transformers.models.pixtral import PixtralVisionConfig  # noqa: E402

from ablation.prefill.finetune import FinetuneSettings, run_finetune  # noqa: E402
from ablation.prefill.finetune.data import IGNORE_INDEX  # noqa: E402
from ablation.prefill.finetune.training_mask import masked_model_inputs  # noqa: E402
from ablation.models import FP8_DTYPE, load_causal_lm, load_tokenizer, native_fp8_problem, save_fp8_checkpoint  # noqa: E402
from ablation.prefill.scoring import ScoringRequest, score_continuations  # noqa: E402
from ablation.prefill.study import MASK_MODES  # noqa: E402
from ablation.world.data import build_world_data  # noqa: E402
from ablation.world.tokenizer import train_tokenizer  # noqa: E402
from train_throughput import PEAK_BF16_TFLOPS  # noqa: E402  (bench/ is the script's directory)

MASK_AGREEMENT = 1e-3  # fp32 log-probs of the two backends; they differ by summation order only
FP8_BLOCK = (128, 128)  # the hub checkpoint's block size
SIZES = {  # text model shapes for the throughput checks
    "cuda": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4, head_dim=128, vocab_size=32768),
    "cpu": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=512),
}


def text_config(shape: dict, **overrides) -> Ministral3Config:
    return Ministral3Config(**{**shape, "max_position_embeddings": 4096, "pad_token_id": 0, **overrides})


def random_requests(vocab: int, contexts: int, choices: int, generator: torch.Generator) -> list[ScoringRequest]:
    """Multiple-choice-shaped requests: prompts of 64-192 tokens, each with ``choices`` answers of 4-24 tokens."""

    def tokens(low: int, high: int) -> tuple[int, ...]:
        length = int(torch.randint(low, high, (1,), generator=generator))
        return tuple(torch.randint(1, vocab, (length,), generator=generator).tolist())

    return [ScoringRequest(context, tokens(4, 24)) for context in (tokens(64, 192) for _ in range(contexts)) for _ in range(choices)]


def random_batch(vocab: int, batch: int, length: int, generator: torch.Generator, device: str) -> dict[str, torch.Tensor]:
    """A collated-looking training batch: full rows, the first 40-60 % of each a prompt without loss."""
    input_ids = torch.randint(1, vocab, (batch, length), generator=generator)
    prompt_lengths = torch.randint(int(0.4 * length), int(0.6 * length), (batch,), generator=generator)
    labels = input_ids.masked_fill(torch.arange(length)[None, :] < prompt_lengths[:, None], IGNORE_INDEX)
    batch_tensors = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels, "prompt_lengths": prompt_lengths}
    return {name: tensor.to(device) for name, tensor in batch_tensors.items()}


def twin_models(config, attn_implementations, dtype, device) -> dict:
    """The same random weights under each attention implementation."""
    torch.manual_seed(0)
    first = Ministral3ForCausalLM._from_config(config, attn_implementation=attn_implementations[0], dtype=dtype)
    models = {attn_implementations[0]: first}
    for implementation in attn_implementations[1:]:
        model = Ministral3ForCausalLM._from_config(config, attn_implementation=implementation, dtype=dtype)
        model.load_state_dict(first.state_dict())
        models[implementation] = model
    return {name: model.to(device).eval() for name, model in models.items()}


def check_masks(device: str) -> dict:
    """flex_attention's BlockMask and sdpa's 4-D mask must give the same numbers in every mode."""
    if not device.startswith("cuda"):
        return {"skipped": "flex_attention is checked on CUDA (inductor's CPU flex kernels neither compile every mask nor train)"}
    config = text_config(SIZES["cpu"])
    models = twin_models(config, ["sdpa", "flex_attention"], torch.float32, device)
    generator = torch.Generator().manual_seed(1)
    requests = random_requests(config.vocab_size, contexts=8, choices=4, generator=generator)
    figures = {}
    for mode in MASK_MODES:
        scores = {name: score_continuations(model, requests, mode=mode, batch_size=16) for name, model in models.items()}
        figures[f"scoring_{mode}_max_abs_diff"] = max(
            abs(a - b)
            for sdpa, flex in zip(scores["sdpa"], scores["flex_attention"])
            for a, b in zip(sdpa.token_logprobs, flex.token_logprobs)
        )
    batch = random_batch(config.vocab_size, 4, 128, generator, device)
    for mode in ("causal", "prefill_bidir"):
        with torch.no_grad():
            losses = [float(model(**masked_model_inputs(model.config, batch, mode, model.dtype)).loss) for model in models.values()]
        figures[f"train_loss_{mode}_abs_diff"] = abs(losses[0] - losses[1])
    figures["agree"] = max(figures.values()) < MASK_AGREEMENT
    return figures


def check_eval(device: str, shape: dict, dtype: torch.dtype) -> dict:
    """Scorer throughput in the study's evaluation setting (multiple choice, shared prefill)."""
    model = twin_models(text_config(shape), ["sdpa"], dtype, device)["sdpa"]
    generator = torch.Generator().manual_seed(2)
    requests = random_requests(shape["vocab_size"], contexts=64, choices=4, generator=generator)
    seconds = {"causal": [], "prefill_bidir": []}
    for _ in range(3):  # alternating rounds, the first a warm-up (kernels, allocator); the best of the others counts
        for mode, times in seconds.items():
            started = time.perf_counter()
            score_continuations(model, requests, mode=mode, batch_size=32)  # returns floats: synchronised
            times.append(time.perf_counter() - started)
    figures = {f"{mode}_requests_per_s": len(requests) / min(times[1:]) for mode, times in seconds.items()}
    figures["prefill_bidir_vs_causal"] = figures["prefill_bidir_requests_per_s"] / figures["causal_requests_per_s"]
    return figures


def train_steps(model, batches, mode: str, device: str) -> tuple[float, int]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    started, tokens = time.perf_counter(), 0
    for batch in batches:
        model(**masked_model_inputs(model.config, batch, mode, model.dtype)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started, tokens


def peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)


def check_train(device: str, shape: dict, dtype: torch.dtype, steps: int, batch_size: int, length: int) -> dict:
    """Optimiser-step throughput per attention backend and training mask, and MFU."""
    generator = torch.Generator().manual_seed(3)
    batches = [random_batch(shape["vocab_size"], batch_size, length, generator, device) for _ in range(steps)]
    peak = peak_tflops(device)
    figures = {"peak_bf16_tflops": peak}
    implementations = ("sdpa", "flex_attention") if device.startswith("cuda") else ("sdpa",)  # no flex backward on CPU
    for implementation in implementations:
        model = twin_models(text_config(shape), [implementation], dtype, device)[implementation].train()
        # the input embedding is a lookup, not a matmul
        matmul_parameters = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
        train_steps(model, batches[:2], "causal", device)  # warm-up: kernels, flex compilation, allocator
        for mode in ("causal", "prefill_bidir"):
            seconds, tokens = train_steps(model, batches, mode, device)
            tokens_per_s = tokens / seconds
            figures[f"{implementation}_{mode}_tokens_per_s"] = tokens_per_s
            figures[f"{implementation}_{mode}_mfu"] = 6 * matmul_parameters * tokens_per_s / (peak * 1e12) if peak else None
        figures["matmul_parameters"] = matmul_parameters
        del model
    return figures


def fp8_miniature(directory: Path, tokenizer) -> Path:
    """A random Mistral-3 (ministral3 + pixtral) with the world's tokenizer, saved in the hub's FP8 layout."""
    text = text_config(
        dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64),
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    vision = PixtralVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16)
    torch.manual_seed(4)
    model = Mistral3ForConditionalGeneration._from_config(Mistral3Config(text_config=text.to_dict(), vision_config=vision.to_dict()))
    save_fp8_checkpoint(model.to(torch.bfloat16), directory, block_size=FP8_BLOCK)
    tokenizer.save_pretrained(directory)
    return directory


def check_fp8(device: str, workdir: Path) -> dict:
    """Dequantized and native FP8 loads of a hub-layout checkpoint, and the dequantize-for-training path."""
    world = workdir / "world"
    build_world_data(world, seed=7, corpus_documents=300, eval_examples_per_task=4, instruction_examples=60)
    train_tokenizer(world / "corpus.txt", world / "tokenizer", vocab_size=400)
    checkpoint = fp8_miniature(workdir / "fp8", load_tokenizer(str(world / "tokenizer")))
    generator = torch.Generator().manual_seed(5)
    requests = random_requests(400, contexts=8, choices=4, generator=generator)

    dequantized = load_causal_lm(str(checkpoint), dtype="bfloat16", device=device)
    reference = [score.logprob for score in score_continuations(dequantized, requests, mode="prefill_bidir")]
    figures = {"dequantized_weights": dequantized.weights_provenance}
    del dequantized
    problem = native_fp8_problem(device)
    if problem is None:
        native = load_causal_lm(str(checkpoint), dtype="bfloat16", device=device, quantized_weights="native_fp8")
        scores = [score.logprob for score in score_continuations(native, requests, mode="prefill_bidir")]
        figures["native_weights"] = native.weights_provenance
        figures["native_vs_dequantized_max_rel_diff"] = max(abs(a - b) / abs(b) for a, b in zip(scores, reference))
        del native
    else:
        figures["native_skipped"] = problem

    precision = "bf16" if device.startswith("cuda") else "fp32"
    settings = FinetuneSettings.merged(dict(
        train_mask="prefill_bidir", train_samples=24, eval_samples=4, eval_fraction=0.1, max_seq_len=256, max_steps=3,
        per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-4, weight_decay=0.0, warmup_ratio=0.0,
        optimizer="adafactor", lr_scheduler="constant_with_warmup", precision=precision, gradient_checkpointing=True,
        eval_steps=3, save_steps=100, logging_steps=1,
    ))
    summary = run_finetune(
        run_name="fp8_readiness", base_model_id=str(checkpoint), dataset=str(world / "instructions.jsonl"), settings=settings,
        run_dir=workdir / "finetune", config={"bench": "gpu_readiness"}, seed=6, device=device,
    )
    saved = load_file(workdir / "finetune" / "final" / "model.safetensors")
    figures["finetune"] = {
        "steps_run": summary["steps_run"],
        "final_eval_loss": summary["final_eval_loss"],
        "weights": summary["provenance"]["weights"],
        "saved_fp8_tensors": sum(1 for tensor in saved.values() if tensor.dtype == FP8_DTYPE),
    }
    expectations = [
        figures["dequantized_weights"]["fp8_tensors"] == 0,
        figures["finetune"]["steps_run"] == settings.max_steps,
        figures["finetune"]["saved_fp8_tensors"] == 0,  # the fine-tune is saved as floats, not re-quantized
    ]
    if problem is None:
        # native FP8 also quantises activations: close to the dequantized weights' scores, not equal
        expectations.append(figures["native_vs_dequantized_max_rel_diff"] < 0.05)
    figures["agree"] = all(expectations)
    return figures


def run_check(name: str, check, *args) -> dict:
    """One check's figures, or the error that stopped it; the other checks run either way."""
    started = time.perf_counter()
    try:
        figures = check(*args)
    except Exception as error:  # a readiness report lists every failure instead of stopping at the first
        message = str(error).strip().splitlines() or [""]
        figures = {"error": f"{type(error).__name__}: {message[0][:300]}", "traceback": traceback.format_exc(limit=4)[-3000:]}
    figures["seconds"] = round(time.perf_counter() - started, 2)
    print(f"{name}: {json.dumps(figures, default=str)}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hidden-size", type=int, help="throughput model width (default 2048 on CUDA, 128 on CPU)")
    parser.add_argument("--layers", type=int, help="throughput model depth (default 8 on CUDA, 2 on CPU)")
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per throughput measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, help="training sequence length (default 1024 on CUDA, 128 on CPU)")
    arguments = parser.parse_args()
    cuda = arguments.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA GPU")
    shape = dict(SIZES["cuda" if cuda else "cpu"])
    shape["hidden_size"] = arguments.hidden_size or shape["hidden_size"]
    shape["num_hidden_layers"] = arguments.layers or shape["num_hidden_layers"]
    seq_len = arguments.seq_len or (1024 if cuda else 128)
    dtype = torch.bfloat16 if cuda else torch.float32

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_readiness_") as workdir:
        checks = {
            "masks": run_check("masks", check_masks, arguments.device),
            "eval": run_check("eval", check_eval, arguments.device, shape, dtype),
            "train": run_check("train", check_train, arguments.device, shape, dtype, arguments.steps, arguments.batch_size, seq_len),
            "fp8": run_check("fp8", check_fp8, arguments.device, Path(workdir)),
        }
    ok = all("error" not in figures and figures.get("agree", True) for figures in checks.values())
    report = {
        "device": torch.cuda.get_device_name(arguments.device) if cuda else "cpu",
        "capability": ".".join(map(str, torch.cuda.get_device_capability(arguments.device))) if cuda else None,
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "throughput_model": shape,
        "seq_len": seq_len,
        "ok": ok,
        "seconds": round(time.perf_counter() - started, 1),
        "checks": {name: {key: value for key, value in figures.items() if key != "traceback"} for name, figures in checks.items()},
    }
    print(json.dumps(report, sort_keys=True, default=str))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
