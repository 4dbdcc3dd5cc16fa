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

Training: tokens/s of the run's translator steps (source read + KL baseline + translator + target
forward and backward through the soft tokens; tokens = the target-side sequence) against the floor, a
forward and backward of the frozen target alone on the same batches read as text. The steps run twice
from the same translator: uncached (the source and the target's KL baseline run at every step, the
original's) and cached (the source's states and the KL baselines read from their caches,
``ablation.bridge.frozen_cache``, built here for every training and eval prompt and training row, and
timed). ``suite_train_speedup`` times every run of the suite's own step (``--suite-steps``), routed
as the workflow routes it (``cache_plan.cached_run_keys``: caches on, ``prompts``, ``min_runs``): a run
reading every cache it has a key for is charged its cached step, the others their uncached one, and
the cached suite each built key's build once: (Σ steps × uncached step) / (Σ steps × the step it
trains with + the builds); a run's steps are its trained steps (early stopping included) where its
summary exists, else its train_steps. With CUDA it also gives the caches' GB per 1,000 questions at
7B scale (bf16; source width 4096 at this world's source tokens per question; KL baselines at this
world's compared positions per row over 32k and 128k vocabularies).

Usage (after `snakemake --cores 2` built the tiny default):
    .venv/bin/python bench/bridge_throughput.py [--configfile config.yaml] [--run NAME] [--steps 20] [--suite-steps 10]
On a CUDA machine the same figures are also printed in bf16. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402

from ablation.bridge.batches import lead_text, tokenize_target  # noqa: E402
from ablation.bridge.data import eval_examples, load_rows, prompt_task  # noqa: E402
from ablation.bridge.frozen import load_frozen  # noqa: E402
from ablation.bridge.frozen_cache import (  # noqa: E402
    INDEX_FILE,
    build_kl_baselines,
    build_source_states,
    kl_baseline_rows,
    open_kl_baselines,
    open_source_states,
    source_state_prompts,
)
from ablation.bridge.cache_plan import cached_run_keys, reads_every_cache  # noqa: E402
from ablation.bridge.generation import Hygiene, generate_from_text  # noqa: E402
from ablation.bridge.prompts import answer_text, task_prompt  # noqa: E402
from ablation.bridge.settings import (  # noqa: E402
    embedded_model_name,
    kl_baseline_key,
    resolve_runs,
    source_state_key,
    source_state_name,
    trained_run_of,
)
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


def target_tokens(bridge, batch) -> int:
    """Target-side tokens of a translator step: the soft tokens, the lead and the answer."""
    s = bridge.settings
    leads = [lead_text(bridge.dataset, task_prompt(bridge.dataset, row), s["prompt_mode"]) for row in batch]
    target_batch = tokenize_target(bridge.target.tokenizer, leads, [answer_text(bridge.dataset, row) for row in batch],
                                   max_lead_tokens=s["max_prompt_tokens"], max_answer_tokens=s["max_answer_tokens"])  # fmt: skip
    return int(target_batch.attention.sum()) + s["soft_tokens"] * len(batch)


class Caches:
    """The frozen-output caches the bench reads, each built once per key name in one folder, with its build's
    index (seconds, bytes): the workflow builds a key once, whichever runs read it."""

    def __init__(self, folder: Path, dtype: str) -> None:
        self.folder, self.dtype, self.built = folder, dtype, {}

    def source_states(self, name: str, source, prompts: list[str], s: dict):
        if name not in self.built:
            index = build_source_states(self.folder / name, source, prompts, key={}, layer=s["source_layer"],
                                        max_tokens=s["max_prompt_tokens"], dtype=self.dtype, max_bytes=10**12, batch_size=64)  # fmt: skip
            self.built[name] = (open_source_states(self.folder / name / INDEX_FILE, {}), index)
        return self.built[name]

    def kl_baselines(self, name: str, target, kl_rows: tuple[list[str], list[str]], s: dict):
        if name not in self.built:
            index = build_kl_baselines(self.folder / name, target, *kl_rows, key={}, settings=s, dtype=self.dtype, max_bytes=10**12, batch_size=64)
            self.built[name] = (open_kl_baselines(self.folder / name / INDEX_FILE, {}), index)
        return self.built[name]

    def build_seconds(self, names) -> float:
        return sum(self.built[name][1]["build_seconds"] for name in set(names))


def train_seconds(bridge, rows, steps: int, caches: dict | None, *, floor: bool = True) -> dict:
    """Seconds per translator step with the source and the KL baseline run at every step (the
    original's) and, given ``caches`` (source_states, kl_baselines), read from them; and, with
    ``floor``, of the frozen target's forward+backward alone on the same batches. The modes are
    interleaved step by step from the same translator and timed by the median step, so load from other
    processes hits them alike; also how far the two translators are apart after ``steps`` steps."""
    s = bridge.settings
    device = bridge.target.model.device
    batches = [[rows[i] for i in batch_indices(step, s["per_device_batch"], len(rows), s["seed"])] for step in range(steps)]
    translators = {"uncached": bridge.translator}
    if caches is not None:
        translators["cached"] = copy.deepcopy(bridge.translator)
    optimizers = {name: torch.optim.AdamW(translator.parameters(), lr=s["lr"]) for name, translator in translators.items()}
    seconds = {name: [] for name in [*translators, *(["floor"] if floor else [])]}
    tokens = floor_tokens = 0
    for step, batch in enumerate([batches[0]] + batches):  # the first step warms up, untimed
        for name, translator in translators.items():
            bridge.source_states, bridge.kl_baselines = (caches["source_states"], caches["kl_baselines"]) if name == "cached" else (None, None)
            torch.manual_seed(step)  # both translators draw the same dropout
            started = time.perf_counter()
            values = bridge.losses(translator, batch, step + s["warmup_steps"])  # every loss active
            optimizers[name].zero_grad()
            values["total"].backward()
            optimizers[name].step()
            if step > 0:
                seconds[name].append(time.perf_counter() - started)
        if step > 0:
            tokens += target_tokens(bridge, batch)
        if not floor:
            continue
        started = time.perf_counter()
        text = tokenize_target(bridge.target.tokenizer, [task_prompt(bridge.dataset, row) for row in batch],
                               [answer_text(bridge.dataset, row) for row in batch],
                               max_lead_tokens=s["max_prompt_tokens"], max_answer_tokens=s["max_answer_tokens"])  # fmt: skip
        embeds = bridge.target.embeddings(text.ids.to(device)).detach().requires_grad_()
        logits = bridge.target.model(inputs_embeds=embeds, attention_mask=text.attention.to(device)).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), text.ids[:, 1:].flatten().to(device)).backward()
        if step > 0:
            seconds["floor"].append(time.perf_counter() - started)
            floor_tokens += int(text.attention.sum())
    bridge.source_states = bridge.kl_baselines = None
    step_seconds = {name: statistics.median(values) for name, values in seconds.items()}
    timing = {"uncached_step_s": step_seconds["uncached"], "train_tokens_per_s": tokens / steps / step_seconds["uncached"]}
    if caches is not None:
        cached_weights = translators["cached"].state_dict()
        timing.update(
            cached_step_s=step_seconds["cached"],
            cached_train_tokens_per_s=tokens / steps / step_seconds["cached"],
            cached_vs_uncached_max_weight_difference=max(float((value - cached_weights[name]).abs().max())
                                                         for name, value in translators["uncached"].state_dict().items()),
        )  # fmt: skip
    if floor:
        timing["target_alone_tokens_per_s"] = floor_tokens / steps / step_seconds["floor"]
    return timing


def suite_run_steps(results: Path, run: str, settings: dict) -> int:
    """The steps a suite run trains: its built summary's (early stopping included), else its train_steps."""
    summary = bridge_run_dir(results, run) / "summary.json"
    return json.loads(summary.read_text())["trained_steps"] if summary.exists() else settings["train_steps"]


def cache_name(kind: str, key: dict) -> str:
    return f"{kind}-{source_state_name(key)}"


def suite_timing(suite, runs, steps_of, routing, make_bridge, inputs_of, caches: Caches, steps: int) -> dict[str, dict]:
    """Every suite run's own step, as the workflow routes it (``routing``: state keys, KL keys, the runs
    reading every cache): uncached, and cached where the run reads every cache; every routed key built once."""
    state_keys, kl_keys, reads_all = routing
    per_run = {}
    for name in suite:
        s = runs[name]
        bridge = make_bridge(s)
        prompts, kl_rows, rows = inputs_of(s)
        states = caches.source_states(cache_name("states", state_keys[name]), bridge.source, prompts, s)[0] if name in state_keys else None
        kl = caches.kl_baselines(cache_name("kl", kl_keys[name]), bridge.target, kl_rows, s)[0] if name in kl_keys else None
        timing = train_seconds(bridge, rows, steps, {"source_states": states, "kl_baselines": kl} if name in reads_all else None, floor=False)
        per_run[name] = {"steps": steps_of[name], "uncached_step_s": timing["uncached_step_s"], "cached_step_s": timing.get("cached_step_s")}
    return per_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=Path("config.yaml"))
    parser.add_argument("--run", help="bridge run to time (default: the config's first)")
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    parser.add_argument("--suite-steps", type=int, default=10, help="training steps to time in each run of the suite")
    arguments = parser.parse_args()
    config = validate_config(yaml.safe_load(arguments.configfile.read_text()))
    bridge_config = config["bridge"]
    runs = resolve_runs(bridge_config, load_schema(), config["seed"])
    run = arguments.run or next(iter(runs))
    s = runs[run]
    results = Path(config["results_dir"])
    data_dir = bridge_world_dir(results)

    def model_path(name: str) -> str:
        embedded = embedded_model_name(bridge_config["models"][name]["id"])
        return str(embedded_model_dir(results, embedded)) if embedded else bridge_config["models"][name]["id"]

    def inputs_of(settings: dict) -> tuple[list[str], tuple[list[str], list[str]], list[dict]]:
        """A run's source prompts (each once), KL-baseline rows and training rows."""
        source_data = bridge_config["datasets"][settings["dataset"]]
        prompts = list(dict.fromkeys(source_state_prompts(settings, source_data, data_dir, bridge_config["eval"])))
        kl_rows = kl_baseline_rows(settings, source_data, data_dir, bridge_config["eval"])
        return prompts, kl_rows, load_rows(settings["dataset"], source_data, source_data["train_split"], data_dir)

    source_data = bridge_config["datasets"][s["dataset"]]
    train_rows = load_rows(s["dataset"], source_data, source_data["train_split"], data_dir)
    eval_rows = load_rows(s["dataset"], source_data, source_data["eval_split"], data_dir)
    examples = eval_examples(s["dataset"], eval_rows, train_rows, bridge_config["eval"], source_data)
    trained = bridge_run_dir(results, trained_run_of(runs)[run]) / "translator.pt"
    evals_per_run = s["train_steps"] // s["eval_every"] + 2
    prompts, kl_rows, _ = inputs_of(s)
    suite = list(dict.fromkeys(trained_run_of(runs).values()))  # the runs the default suite trains
    steps_of = {name: suite_run_steps(results, name, runs[name]) for name in suite}
    suite_steps = sum(steps_of.values())
    torch.manual_seed(s["seed"])

    figures, suite_runs = {}, {}
    settings = [("cpu", "float32")] + ([("cuda", "bfloat16")] if torch.cuda.is_available() else [])
    for device, dtype in settings:
        loaded = {}

        def frozen(name: str):
            if name not in loaded:
                loaded[name] = load_frozen(name, model_path(name), bridge_config["models"][name]["revision"], dtype=dtype, device=device)
            return loaded[name]

        def make_bridge(settings: dict) -> Bridge:
            return Bridge(frozen(settings["source"]), frozen(settings["target"]), settings,
                          prompt_task(settings["dataset"], bridge_config["datasets"][settings["dataset"]]))  # fmt: skip

        # as the workflow routes the suite: each built key once; a run reading every cache it has a key
        # for steps as the cached step, the others (keys of fewer than min_runs runs, caches off) uncached
        state_keys, kl_keys = cached_run_keys({name: runs[name] for name in suite}, bridge_config, device)
        reads_all = {name for name in suite if reads_every_cache(name, runs[name], state_keys, kl_keys)}
        bridge = make_bridge(s)
        if trained.exists():  # a trained translator generates answers of realistic length
            bridge.translator.load_state_dict(torch.load(trained, map_location=device, weights_only=False)["state_dict"])
        bridge.translator.eval()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            evaluation = eval_step_seconds(bridge, bridge.translator, examples, bridge_config["eval"], dtype)
            bridge.translator.train()
            with tempfile.TemporaryDirectory() as cache_dir:
                caches = Caches(Path(cache_dir), dtype)
                models, eval_settings = bridge_config["models"], bridge_config["eval"]
                states, state_index = caches.source_states(cache_name("states", source_state_key(s, models[s["source"]], source_data, eval_settings, device)),
                                                           bridge.source, prompts, s)  # fmt: skip
                kl, kl_index = caches.kl_baselines(cache_name("kl", kl_baseline_key(s, models[s["target"]], source_data, eval_settings, device)),
                                                   bridge.target, kl_rows, s)  # fmt: skip
                training = train_seconds(bridge, train_rows, arguments.steps, {"source_states": states, "kl_baselines": kl})
                per_run = suite_timing(suite, runs, steps_of, (state_keys, kl_keys, reads_all), make_bridge, inputs_of, caches, arguments.suite_steps)
                builds = caches.build_seconds([cache_name("states", key) for key in state_keys.values()]
                                              + [cache_name("kl", key) for key in kl_keys.values()])  # fmt: skip
        suite_keys = len({source_state_name(key) for key in state_keys.values()})
        suite_kl_keys = len({source_state_name(key) for key in kl_keys.values()})
        cached_steps = sum(steps_of[name] for name in reads_all)
        amortized = evaluation["ours"] + evaluation["baselines_once"] / evals_per_run
        suite_uncached = sum(entry["steps"] * entry["uncached_step_s"] for entry in per_run.values())
        suite_cached = sum(entry["steps"] * (entry["cached_step_s"] or entry["uncached_step_s"]) for entry in per_run.values()) + builds
        training.update(
            cache_build_s=state_index["build_seconds"], kl_cache_build_s=kl_index["build_seconds"],
            cache_bytes=state_index["stored_bytes"], kl_cache_bytes=kl_index["stored_bytes"],
            source_tokens_per_question=state_index["stored_bytes"] / (state_index["width"] * getattr(torch, dtype).itemsize) / len(prompts),
            kl_positions_per_row=kl_index["stored_bytes"] / (kl_index["width"] * getattr(torch, dtype).itemsize) / kl_index["prompts"],
        )  # fmt: skip
        suite_runs[f"{device}_{dtype}"] = per_run
        figures[f"{device}_{dtype}"] = {
            **evaluation, **training,
            "eval_step_vs_original": evaluation["original"] / evaluation["ours"],
            "eval_step_vs_original_amortized": evaluation["original"] / amortized,
            "train_vs_target_alone": training["train_tokens_per_s"] / training["target_alone_tokens_per_s"],
            "cached_vs_target_alone": training["cached_train_tokens_per_s"] / training["target_alone_tokens_per_s"],
            "cached_amortized_step_s": training["cached_step_s"] + builds / max(1, cached_steps),  # the builds spread over the steps that read them
            "suite_train_speedup": suite_uncached / suite_cached,
            "suite_uncached_s": suite_uncached, "suite_cached_s": suite_cached, "suite_builds_s": builds,
            "suite_keys": suite_keys, "suite_kl_keys": suite_kl_keys, "suite_cached_steps": cached_steps,
            # a 7B source (width 4096) in bf16, at this world's measured source tokens per question
            "cache_gb_per_1000_questions_7b": training["source_tokens_per_question"] * 4096 * 2 * 1000 / 1e9,
            # the KL baselines of a 7B target in bf16, at this world's compared positions per row
            "kl_cache_gb_per_1000_questions_32k_vocab": training["kl_positions_per_row"] * 32_000 * 2 * 1000 / 1e9,
            "kl_cache_gb_per_1000_questions_128k_vocab": training["kl_positions_per_row"] * 128_256 * 2 * 1000 / 1e9,
        }  # fmt: skip

    print(f"run {run} ({s['translator']}, K={s['soft_tokens']}), {len(examples)} eval questions, "
          f"{arguments.steps} training steps, translator {'trained' if trained.exists() else 'untrained'}")  # fmt: skip
    print(f"{'device':<16}{'original s':>12}{'ours s':>10}{'vs original':>13}{'amortized':>11}{'train tok/s':>13}{'vs target alone':>17}")
    for name, f in figures.items():
        print(f"{name:<16}{f['original']:>12.2f}{f['ours']:>10.2f}{f['eval_step_vs_original']:>12.2f}x"
              f"{f['eval_step_vs_original_amortized']:>10.2f}x{f['train_tokens_per_s']:>13.0f}{f['train_vs_target_alone']:>16.2f}x")  # fmt: skip
    for name, f in figures.items():
        print(f"{name} suite: {len(suite)} trained runs, {suite_steps} steps, {f['suite_cached_steps']} of them reading every cache; "
              f"{f['suite_keys']} source-state and {f['suite_kl_keys']} KL-baseline caches built ({f['suite_builds_s']:.1f} s); "
              f"each run's step timed over {arguments.suite_steps} steps")  # fmt: skip
        print(f"{'run':<10}{'steps':>7}{'uncached s/step':>17}{'cached s/step':>15}{'uncached/cached':>17}")
        for run_name, entry in suite_runs[name].items():
            cached = entry["cached_step_s"]
            print(f"{run_name:<10}{entry['steps']:>7}{entry['uncached_step_s']:>17.4f}"
                  + (f"{cached:>15.4f}{entry['uncached_step_s'] / cached:>16.2f}x" if cached else f"{'on the fly':>15}{'':>17}"))  # fmt: skip
        print(f"suite: {f['suite_uncached_s']:.1f} s uncached, {f['suite_cached_s']:.1f} s cached with the builds: {f['suite_train_speedup']:.2f}x")
    print(f"run {run}, {arguments.steps} steps:")
    print(f"{'device':<16}{'uncached s/step':>16}{'cached s/step':>15}{'+build amortized':>18}{'floor tok/s':>13}"
          f"{'uncached/floor':>16}{'cached/floor':>14}{'build s':>9}{'KL build s':>12}")  # fmt: skip
    for name, f in figures.items():
        print(f"{name:<16}{f['uncached_step_s']:>16.4f}{f['cached_step_s']:>15.4f}{f['cached_amortized_step_s']:>18.4f}"
              f"{f['target_alone_tokens_per_s']:>13.0f}{f['train_vs_target_alone']:>15.2f}x{f['cached_vs_target_alone']:>13.2f}x"
              f"{f['cache_build_s']:>9.2f}{f['kl_cache_build_s']:>12.2f}")  # fmt: skip
    for name, f in figures.items():
        print(f"{name}: translator after {arguments.steps} steps, cached vs uncached: max weight difference {f['cached_vs_uncached_max_weight_difference']:.2e}")
    if "cuda_bfloat16" in figures:
        cuda = figures["cuda_bfloat16"]
        print(f"source-state cache at 7B scale (bf16, width 4096): {cuda['cache_gb_per_1000_questions_7b']:.2f} GB per 1,000 questions; "
              f"KL baselines: {cuda['kl_cache_gb_per_1000_questions_32k_vocab']:.2f} GB (32k vocabulary), "
              f"{cuda['kl_cache_gb_per_1000_questions_128k_vocab']:.2f} GB (128k) per 1,000 questions")  # fmt: skip
    headline = figures["cpu_float32"]
    print(json.dumps({
        "run": run,
        "eval_step_vs_original": headline["eval_step_vs_original"],
        "eval_step_vs_original_amortized": headline["eval_step_vs_original_amortized"],
        "train_tokens_per_s": headline["train_tokens_per_s"],
        "train_vs_target_alone": headline["train_vs_target_alone"],
        "cached_vs_target_alone": headline["cached_vs_target_alone"],
        "suite_train_speedup": headline["suite_train_speedup"],
        "suite_steps": suite_steps,
        "suite_cached_steps": headline["suite_cached_steps"],
        "suite_runs": suite_runs,
        "evals_per_run": evals_per_run,
        "threads": torch.get_num_threads(),
        "translator_trained": trained.exists(),
        "figures": figures,
    }, sort_keys=True))  # fmt: skip


if __name__ == "__main__":
    main()
