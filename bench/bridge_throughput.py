"""Bridge throughput: evaluation cost per eval step and translator training speed, against baselines
run side by side in this process.

Evaluation, per eval step of a run:
  original  the original's shape: source-alone, target-alone and bridged answers all generated at
            every eval step, each row decoding until EOS or max_new_tokens;
  ours      bridged answers only (source-alone and target-alone are DAG nodes, computed once per
            (model, dataset) and read from disk), each row stopping after its answer line when the
            run's hygiene says so.
``eval_step_vs_original`` = original seconds / ours; ``..._amortized`` charges ours the one-time
baseline generation spread over the run's evaluations (a run of train_steps/eval_every + 2 evals).

Training: tokens/s of the run's translator steps (source read + translator + target forward and
backward through the soft tokens; tokens = the target-side sequence) against the floor, a forward
and backward of the frozen target alone on the same batches read as text.

Usage (after `snakemake --cores 2` built the tiny default):
    .venv/bin/python bench/bridge_throughput.py [--configfile config.yaml] [--run NAME] [--steps 20]
On a CUDA machine the same figures are also printed in bf16. The last line is one JSON object.
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
import yaml  # noqa: E402

from ablation.bridge.batches import lead_text, tokenize_target  # noqa: E402
from ablation.bridge.data import eval_examples, load_rows  # noqa: E402
from ablation.bridge.frozen import load_frozen  # noqa: E402
from ablation.bridge.generation import Hygiene, generate_from_text  # noqa: E402
from ablation.bridge.prompts import answer_text, task_prompt  # noqa: E402
from ablation.bridge.settings import embedded_model_name, resolve_runs, trained_run_of  # noqa: E402
from ablation.bridge.model import Bridge, batch_indices  # noqa: E402
from ablation.config import load_schema, validate_config  # noqa: E402
from ablation.layout import bridge_run_dir, bridge_world_dir, embedded_model_dir  # noqa: E402


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def eval_step_seconds(bridge, translator, examples, eval_settings, dtype) -> dict:
    """Seconds of one eval step in each shape, and the baselines' one-time cost."""
    s, dataset = bridge.settings, bridge.dataset
    batch, budget = eval_settings["batch_size"], eval_settings["max_new_tokens"]
    prompts = [example.prompt for example in examples]
    until_eos = Hygiene(s["repetition_penalty"], stop_after_answer=False)
    alone = {}
    for role in ("source", "target"):
        lm = getattr(bridge, role)
        _, alone[role] = timed(lambda: generate_from_text(lm.model, lm.tokenizer, prompts, dataset=dataset, hygiene=until_eos,
                                                           max_new_tokens=budget, batch_size=batch))  # fmt: skip
        _, alone[f"{role}_cached"] = timed(lambda: generate_from_text(lm.model, lm.tokenizer, prompts, dataset=dataset,
                                                                      hygiene=Hygiene(1.0, True), max_new_tokens=budget, batch_size=batch))  # fmt: skip
    _, bridged_original = timed(lambda: bridge.generate(translator, examples, batch_size=batch, max_new_tokens=budget, hygiene=until_eos))
    _, bridged_ours = timed(lambda: bridge.generate(translator, examples, batch_size=batch, max_new_tokens=budget))
    return {
        "original": alone["source"] + alone["target"] + bridged_original,
        "ours": bridged_ours,
        "baselines_once": alone["source_cached"] + alone["target_cached"],
        "dtype": dtype,
    }


def train_seconds(bridge, rows, steps: int) -> dict:
    """Tokens/s of translator training and of the frozen target's forward+backward alone on the same batches."""
    s = bridge.settings
    optimizer = torch.optim.AdamW(bridge.translator.parameters(), lr=s["lr"])
    device = bridge.target.model.device
    tokens = 0
    batches = [[rows[i] for i in batch_indices(step, s["per_device_batch"], len(rows), s["seed"])] for step in range(steps)]
    started = time.perf_counter()
    for step, batch in enumerate(batches):
        values = bridge.losses(bridge.translator, batch, step + s["warmup_steps"])  # every loss active
        optimizer.zero_grad()
        values["total"].backward()
        optimizer.step()
        leads = [lead_text(bridge.dataset, task_prompt(bridge.dataset, row), s["prompt_mode"]) for row in batch]
        target_batch = tokenize_target(bridge.target.tokenizer, leads, [answer_text(bridge.dataset, row) for row in batch],
                                       max_lead_tokens=s["max_prompt_tokens"], max_answer_tokens=s["max_answer_tokens"])  # fmt: skip
        tokens += int(target_batch.attention.sum()) + s["soft_tokens"] * len(batch)
    translator_seconds = time.perf_counter() - started
    floor_tokens = 0
    started = time.perf_counter()
    for batch in batches:
        text = tokenize_target(bridge.target.tokenizer, [task_prompt(bridge.dataset, row) for row in batch],
                               [answer_text(bridge.dataset, row) for row in batch],
                               max_lead_tokens=s["max_prompt_tokens"], max_answer_tokens=s["max_answer_tokens"])  # fmt: skip
        embeds = bridge.target.embeddings(text.ids.to(device)).detach().requires_grad_()
        logits = bridge.target.model(inputs_embeds=embeds, attention_mask=text.attention.to(device)).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), text.ids[:, 1:].flatten().to(device)).backward()
        floor_tokens += int(text.attention.sum())
    floor_seconds = time.perf_counter() - started
    return {"train_tokens_per_s": tokens / translator_seconds, "target_alone_tokens_per_s": floor_tokens / floor_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=Path("config.yaml"))
    parser.add_argument("--run", help="bridge run to time (default: the config's first)")
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    arguments = parser.parse_args()
    config = validate_config(yaml.safe_load(arguments.configfile.read_text()))
    bridge_config = config["bridge"]
    runs = resolve_runs(bridge_config, load_schema(), config["seed"])
    run = arguments.run or next(iter(runs))
    s = runs[run]
    results = Path(config["results_dir"])

    def model_path(name: str) -> str:
        embedded = embedded_model_name(bridge_config["models"][name]["id"])
        return str(embedded_model_dir(results, embedded)) if embedded else bridge_config["models"][name]["id"]

    source_data = bridge_config["datasets"][s["dataset"]]
    data_dir = bridge_world_dir(results)
    train_rows = load_rows(s["dataset"], source_data, source_data["train_split"], data_dir)
    examples = eval_examples(s["dataset"], load_rows(s["dataset"], source_data, source_data["eval_split"], data_dir), train_rows, bridge_config["eval"])
    trained = bridge_run_dir(results, trained_run_of(runs)[run]) / "translator.pt"
    evals_per_run = s["train_steps"] // s["eval_every"] + 2
    torch.manual_seed(s["seed"])

    figures = {}
    settings = [("cpu", "float32")] + ([("cuda", "bfloat16")] if torch.cuda.is_available() else [])
    for device, dtype in settings:
        frozen = [load_frozen(s[role], model_path(s[role]), bridge_config["models"][s[role]]["revision"], dtype=dtype, device=device)
                  for role in ("source", "target")]  # fmt: skip
        bridge = Bridge(*frozen, s, s["dataset"])
        if trained.exists():  # a trained translator generates answers of realistic length
            bridge.translator.load_state_dict(torch.load(trained, map_location=device, weights_only=False)["state_dict"])
        bridge.translator.eval()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            evaluation = eval_step_seconds(bridge, bridge.translator, examples, bridge_config["eval"], dtype)
            bridge.translator.train()
            training = train_seconds(bridge, train_rows, arguments.steps)
        amortized = evaluation["ours"] + evaluation["baselines_once"] / evals_per_run
        figures[f"{device}_{dtype}"] = {
            **evaluation, **training,
            "eval_step_vs_original": evaluation["original"] / evaluation["ours"],
            "eval_step_vs_original_amortized": evaluation["original"] / amortized,
            "train_vs_target_alone": training["train_tokens_per_s"] / training["target_alone_tokens_per_s"],
        }  # fmt: skip

    print(f"run {run} ({s['translator']}, K={s['soft_tokens']}), {len(examples)} eval questions, "
          f"{arguments.steps} training steps, translator {'trained' if trained.exists() else 'untrained'}")  # fmt: skip
    print(f"{'device':<16}{'original s':>12}{'ours s':>10}{'vs original':>13}{'amortized':>11}{'train tok/s':>13}{'vs target alone':>17}")
    for name, f in figures.items():
        print(f"{name:<16}{f['original']:>12.2f}{f['ours']:>10.2f}{f['eval_step_vs_original']:>12.2f}x"
              f"{f['eval_step_vs_original_amortized']:>10.2f}x{f['train_tokens_per_s']:>13.0f}{f['train_vs_target_alone']:>16.2f}x")  # fmt: skip
    headline = figures["cpu_float32"]
    print(json.dumps({
        "run": run,
        "eval_step_vs_original": headline["eval_step_vs_original"],
        "eval_step_vs_original_amortized": headline["eval_step_vs_original_amortized"],
        "train_tokens_per_s": headline["train_tokens_per_s"],
        "train_vs_target_alone": headline["train_vs_target_alone"],
        "evals_per_run": evals_per_run,
        "threads": torch.get_num_threads(),
        "translator_trained": trained.exists(),
        "figures": figures,
    }, sort_keys=True))  # fmt: skip


if __name__ == "__main__":
    main()
