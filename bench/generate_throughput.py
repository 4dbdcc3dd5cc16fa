"""Free-form generation throughput: the original study's one-prompt-at-a-time ``generate`` against our
batched, mask-aware generation, on the same prompts, checked to give the same tokens.

(a) original: ``model.generate`` on one unpadded prompt at a time, greedy (the original's loop);
(b) ours, causal: prompts in padded batches, one prefill each, decoding against the KV cache;
(c) ours, prefill_bidir: the same with the prompt prefilled bidirectionally, compared with (a)
    under the original's ``is_causal=False`` patch, which for generation is the same thing.
Tokens/s counts generated tokens (the stopping EOS included).

Usage (after `snakemake --cores 2` built the tiny world):
    .venv/bin/python bench/generate_throughput.py [--world results/world] [--prompts 64] [--max-new-tokens 48]
The last output line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from ablation.prefill.freeform.generation import DecodingSettings, generate  # noqa: E402
from ablation.prefill.freeform.run import eos_token_ids  # noqa: E402
from ablation.prefill.freeform.tasks import tiny_items  # noqa: E402
from ablation.models import load_causal_lm, load_tokenizer  # noqa: E402


def original_generate(model, prompts, max_new_tokens: int, eos: list[int], pad: int) -> tuple[list[tuple[int, ...]], float]:
    """The original's loop: one ``generate`` call per prompt, no padding."""
    started = time.perf_counter()
    outputs = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt], device=model.device)
            tokens = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=pad)
            outputs.append(tuple(tokens[0, len(prompt) :].tolist()))
    return outputs, time.perf_counter() - started


def set_is_causal(model, value: bool) -> None:
    """The original study's patch, applied to every attention module (decode steps are unaffected)."""
    for name, module in model.named_modules():
        if name.endswith("self_attn"):
            module.is_causal = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("results/world"))
    parser.add_argument("--seed", type=int, default=1234, help="world seed of the tiny free-form prompts")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    arguments = parser.parse_args()

    model = load_causal_lm(str(arguments.world / "base_model"))
    tokenizer = load_tokenizer(str(arguments.world / "base_model"))
    items = tiny_items(arguments.seed, (arguments.prompts + 1) // 2)[: arguments.prompts]
    prompts = [tokenizer(item.prompt)["input_ids"] for item in items]
    eos, pad = eos_token_ids(model, tokenizer), tokenizer.pad_token_id
    settings = DecodingSettings(max_new_tokens=arguments.max_new_tokens)
    original_generate(model, prompts[:2], arguments.max_new_tokens, eos, pad)  # warm-up, untimed
    figures = {"device": str(model.device), "threads": torch.get_num_threads(), "prompts": len(prompts), "max_new_tokens": arguments.max_new_tokens}

    for mode, patched in (("causal", False), ("prefill_bidir", True)):
        set_is_causal(model, not patched)
        original, original_seconds = original_generate(model, prompts, arguments.max_new_tokens, eos, pad)
        set_is_causal(model, True)
        started = time.perf_counter()
        ours = generate(model, prompts, mode=mode, settings=settings, eos_token_ids=eos, pad_token_id=pad, batch_size=arguments.batch_size)
        ours_seconds = time.perf_counter() - started
        tokens = sum(len(row) for row in original)
        same = sum(row.tokens == reference for row, reference in zip(ours, original))
        figures[mode] = {
            "original_tokens_per_s": tokens / original_seconds,
            "batched_tokens_per_s": sum(len(row.tokens) for row in ours) / ours_seconds,
            "same_outputs": f"{same}/{len(prompts)}",
        }
        figures[mode]["ratio"] = figures[mode]["batched_tokens_per_s"] / figures[mode]["original_tokens_per_s"]
        print(f"{mode:14s} original {figures[mode]['original_tokens_per_s']:8.1f} tok/s   batched {figures[mode]['batched_tokens_per_s']:8.1f} tok/s   "
              f"×{figures[mode]['ratio']:.2f}   same outputs {figures[mode]['same_outputs']}")
    figures["batched_vs_original_tokens_per_s"] = round(figures["causal"]["ratio"], 3)
    figures["outputs_identical"] = all(figures[mode]["same_outputs"] == f"{len(prompts)}/{len(prompts)}" for mode in ("causal", "prefill_bidir"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
