"""One bridge run: train the translator, evaluate bridged accuracy as it goes, stop early, summarise.

``accelerate`` owns the device, bf16 autocast and DDP, so the same loop runs on a CPU, one GPU
or several (``accelerate launch -m ablation.bridge JOB``, see ``ablation.launch``). Every
``eval_every`` steps (step 0 included) the main process generates the bridged answers for the
eval set; source-alone and target-alone answers come from the baseline files, computed once
per (model, dataset) by their own jobs. With early stopping on, a copy of the best translator is
kept and is the one the final evaluation reads; without it (the seeds' unstable 1b), or with
``final_weights: last`` (what the original's aliased "best" state amounted to), the final
evaluation reads the last translator. Either was evaluated when it was made, so the final
evaluation is that evaluation, not generated again. A checkpoint every ``checkpoint_every`` steps holds everything a killed job
needs to resume exactly; a non-finite loss stops the run with an error and no summary.

Run directory::

    checkpoints/step-N/                the latest resumable state, accelerate's save_state (translator, optimizer,
                                       scheduler, every process's RNG streams) and training_state.pt; named by
    checkpoints/latest.json            which is written last; removed when the run completes; a rerun resumes
                                       it only under the same settings and inputs (ablation.resume)
    checkpoints.resume.json            the hash of those settings and inputs, and how often the run resumed
    eval_samples_step_{N|final}.jsonl  legacy field names, one row per eval question
    history.jsonl                      one row per evaluation: accuracies, invalid counts, soft-token spread, mean losses
    loss_history.csv                   every step's losses and learning rate
    live_log.csv                       step, metric, value: each step's losses and each evaluation's accuracies, appended as they happen
    tensorboard/<run>/                 TensorBoard events of the same (config 'tracking'; other trackers log where they are set up to)
    translator.pt                      the translator the final evaluation read (state dict, settings, widths)
    summary.json                       peak/final accuracy, final soft-token spread, stop reason, the references, the source's legibility, provenance; written last
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, broadcast_object_list, set_seed

from ablation.bridge.answers import extract_answer
from ablation.bridge.batches import cut_source_prompts
from ablation.bridge.data import (
    EvalExample,
    eval_examples,
    few_shots,
    load_rows,
    majority_accuracy,
    majority_answer,
    prompt_task,
    scoring_task,
    unscorable_note,
)
from ablation.bridge.frozen import load_frozen, load_frozen_tokenizer
from ablation.bridge.frozen_cache import open_kl_baselines, open_source_states
from ablation.bridge.prompts import training_prompt
from ablation.bridge.run_format import (
    FINAL_STEP,
    HISTORY_FILE,
    LOSS_HISTORY_FILE,
    SUMMARY_FILE,
    TRANSLATOR_FILE,
    history_row,
    samples_filename,
    samples_step,
    trained_evaluations,
)
from ablation.bridge.model import LOSS_NAMES, Bridge, NonFiniteLossError, batch_indices, optimizer_and_schedule
from ablation.bridge.translators import soft_token_spread
from ablation.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_json, read_jsonl
from ablation.provenance import model_identity, provenance
from ablation.io import file_sha256, settings_sha256
from ablation.resume import claim_checkpoint
from ablation.tracking import LiveLog, configured_trackers, scalar_settings

log = logging.getLogger(__name__)

CHECKPOINTS = Path("checkpoints")
LATEST_CHECKPOINT = "latest.json"  # names the one complete checkpoint folder; written last, atomically
TRAINING_STATE = "training_state.pt"  # step, history, early-stopping state: what accelerate's state lacks
LIVE_LOG_FILE = "live_log.csv"
# Part of the resume hash: a checkpoint's kept best was chosen by the rule of the code that wrote it,
# and one written under another rule (an earlier one kept step 0's untrained translator) is not resumed.
EARLY_STOPPING_RULE = "the best of the evaluations after step 0, above 0"


def read_baseline(path: str | Path, examples: list[EvalExample], role: str) -> dict[int, dict]:
    """A baseline's samples by question index, checked to be answers to this run's eval set."""
    rows = {row["index"]: row for row in read_jsonl(path)}
    for example in examples:
        row = rows.get(example.index)
        if row is None or row["prompt"] != example.prompt:
            raise ValueError(f"{role}-alone samples {path} were generated for another eval set (question {example.index} differs)")
    return rows


def references(dataset: str, train_rows: list[dict], examples: list[EvalExample], target_rows: dict[int, dict]) -> dict:
    """What bridged accuracy is read against besides the two models alone: the majority answer
    (a floor: what one constant answer, all a translator that ignores its source can give, scores
    when it is the most common one) and the target reading the question's own text in the soft
    slot (None for baseline samples written without it)."""
    majority = majority_answer(dataset, train_rows)
    slot = [target_rows[example.index].get("soft_slot_correct") for example in examples]
    return {
        "majority_answer": majority,
        "majority_acc": majority_accuracy(dataset, majority, examples),
        "target_soft_slot_acc": None if None in slot else sum(slot) / len(slot),
    }


def source_legibility(source_metrics: dict, layer: int) -> dict | None:
    """The source baseline's legibility at the layer the run reads (None for a baseline written without it)."""
    legibility = source_metrics.get("legibility")
    if legibility is None:
        return None
    index = layer % len(legibility)  # -1: the last
    return {"layer": index, **legibility[str(index)]}


def sample_rows(step, examples, source_rows, target_rows, generations, dataset) -> list[dict]:
    """The legacy ``eval_samples_step_*.jsonl`` rows of one evaluation."""
    return [
        {
            "eval_step": str(step), "index": example.index, "question": example.question,
            "gold_full_text": example.gold_text, "gold_extracted": example.gold,
            "source_full": source_rows[example.index]["full"], "source_extracted": source_rows[example.index]["extracted"],
            "target_full": target_rows[example.index]["full"], "target_extracted": target_rows[example.index]["extracted"],
            "bridged_full": generation.text, "bridged_extracted": extract_answer(dataset, generation.text),
        }  # fmt: skip
        for example, generation in zip(examples, generations)
    ]


def final_evaluation(run_dir: Path, evaluated: dict) -> dict:
    """The final evaluation of weights already evaluated (history row ``evaluated``): that evaluation's
    samples and numbers under the final step. Generation is greedy and a DiT samples from a fixed
    seed, so evaluating the same weights again would give the same answers."""
    rows = [{**row, "eval_step": str(FINAL_STEP)} for row in read_jsonl(run_dir / samples_filename(evaluated["step"]))]
    atomic_write_jsonl(run_dir / samples_filename(FINAL_STEP), rows)
    return {**{name: value for name, value in evaluated.items() if name != "losses"}, "step": FINAL_STEP}


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The last complete checkpoint folder, or None: a folder counts once ``latest.json`` names it."""
    pointer = checkpoints / LATEST_CHECKPOINT
    return checkpoints / read_json(pointer)["folder"] if pointer.exists() else None


def save_checkpoint(accelerator, checkpoints: Path, state: dict) -> None:
    """accelerate's ``save_state`` (translator, optimizer, scheduler and every process's RNG streams,
    CUDA's included) plus our training state, in a new folder that ``latest.json`` then names.

    Called on every process. A kill mid-save leaves the previous checkpoint named; the older folder
    is deleted only after the pointer moved.
    """
    previous = latest_checkpoint(checkpoints)
    folder = checkpoints / f"step-{state['step']}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        torch.save(state, folder / TRAINING_STATE)
        atomic_write_json(checkpoints / LATEST_CHECKPOINT, {"folder": folder.name, "step": state["step"]})
        if previous is not None and previous != folder:
            shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()


def caches_read(source_cache, kl_cache) -> dict:
    """Which frozen-output caches a run reads, by their key's hash (None: computed in the step). Part
    of the resume hash: a cached step equals an uncached one only to float tolerance, so a run
    resumed across the switch would match neither an uncached nor a cached run exactly."""
    return {name: None if cache is None else settings_sha256(cache.index["key"])
            for name, cache in (("source_states", source_cache), ("kl_baselines", kl_cache))}  # fmt: skip


def _loss_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "lr", "seconds", *LOSS_NAMES, "format_miss_rate"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_bridge(
    *,
    run: str,
    settings: dict,
    models: dict[str, dict],
    dataset_source: dict,
    embedded_data_dir: str | Path | None,
    eval_settings: dict,
    baseline_samples: dict[str, str],
    source_metrics: str | Path,
    run_dir: str | Path,
    config: dict,
    device: str,
    source_states: dict | None = None,
    kl_baselines: dict | None = None,
) -> dict:
    """Train ``run`` into ``run_dir`` (resuming from its checkpoint if one is there); return the summary.
    ``source_states`` ({index, key}): the source-state cache to read instead of running the source
    (which is then not loaded when the cache holds every prompt the run reads); ``kl_baselines``
    ({index, key}): the KL-baseline cache to read instead of the target's baseline forward."""
    run_dir = Path(run_dir)
    s = settings
    dataset = s["dataset"]
    shown_as, scored_as = prompt_task(dataset, dataset_source), scoring_task(dataset, dataset_source)
    on_cpu = device == "cpu"
    accelerator = Accelerator(
        cpu=on_cpu,
        mixed_precision="bf16" if s["precision"] == "bf16" and not on_cpu else "no",
        # a DiT's guidance-free null condition, or a loss switched off for some steps, leaves parameters without gradients
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        log_with=configured_trackers(config) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard")),
    )
    set_seed(s["seed"])
    train_rows = load_rows(dataset, dataset_source, dataset_source["train_split"], embedded_data_dir)
    eval_rows = load_rows(dataset, dataset_source, dataset_source["eval_split"], embedded_data_dir)
    examples = eval_examples(dataset, eval_rows, train_rows, eval_settings, dataset_source)
    shots = few_shots(shown_as, train_rows, eval_settings)
    source_cache = open_source_states(source_states["index"], source_states["key"]) if source_states else None
    if source_states is None:
        log.info("the source's states are computed at every step: no cache for this run "
                 "(bridge.source_state_cache: enabled, prompts; the dry run's cache plan says why)")  # fmt: skip
    kl_cache = open_kl_baselines(kl_baselines["index"], kl_baselines["key"]) if kl_baselines else None
    read_prompts = [training_prompt(shown_as, row, s["train_prompt"], shots) for row in train_rows] + [e.prompt for e in examples]
    source_cached = source_cache is not None and source_cache.covers_prompts(read_prompts)
    frozen = {
        role: load_frozen(s[role], models[s[role]]["id"], models[s[role]]["revision"], dtype=models[s[role]]["dtype"], device=accelerator.device)
        for role in ("source", "target") if not (role == "source" and source_cached)
    }  # fmt: skip
    if source_cached:  # every state comes from the cache: the source's weights are never loaded
        log.info("every prompt's source states are cached: %s is not loaded", s["source"])
        frozen["source"] = load_frozen_tokenizer(s["source"], models[s["source"]]["id"], models[s["source"]]["revision"])
    if s["processes"] not in (None, accelerator.num_processes):
        raise ValueError(f"bridge run {run!r} is set to train on {s['processes']} processes (setting 'processes'), "
                         f"but {accelerator.num_processes} were launched")  # fmt: skip
    global_batch = s["per_device_batch"] * accelerator.num_processes
    if global_batch > len(train_rows):
        raise ValueError(f"bridge run setting 'per_device_batch': a batch of {global_batch} exceeds the {len(train_rows)} training rows")
    baselines = {role: read_baseline(baseline_samples[role], examples, role) for role in ("source", "target")}
    legibility = source_legibility(read_json(source_metrics), s["source_layer"])

    bridge = Bridge(frozen["source"], frozen["target"], s, shown_as, shots)
    bridge.source_states, bridge.kl_baselines = source_cache, kl_cache
    optimizer, scheduler = optimizer_and_schedule(bridge.translator, s)
    state = {"step": 0, "history": [], "loss_rows": [], "best": None, "stale_evals": 0, "elapsed": 0.0, "stop_reason": None}
    checkpoints = run_dir / CHECKPOINTS
    claim = claim_checkpoint(
        checkpoints,
        settings_sha256({
            "settings": s, "models": {name: model_identity(frozen[name].model_id, frozen[name].revision) for name in frozen},
            "train_rows": train_rows, "eval": [dataclasses.asdict(example) for example in examples], "eval_settings": eval_settings,
            "baselines": {role: file_sha256(path) for role, path in baseline_samples.items()}, "processes": accelerator.num_processes,
            "caches_read": caches_read(source_cache, kl_cache), "early_stopping": EARLY_STOPPING_RULE,
        }),  # fmt: skip
        job=f"bridge run {run}",
        attempt_files=sorted(path for path in run_dir.glob("eval_samples_step_*.jsonl")),
        main_process=accelerator.is_main_process,
    )
    resume_from = latest_checkpoint(checkpoints) if claim.resumable else None
    resumed = resume_from is not None
    accelerator.register_for_checkpointing(scheduler)  # stepped once per step by us, not prepared
    translator, optimizer = accelerator.prepare(bridge.translator, optimizer)
    unwrapped = accelerator.unwrap_model(translator)
    if resumed:
        accelerator.load_state(str(resume_from))
        state = torch.load(resume_from / TRAINING_STATE, map_location="cpu", weights_only=False)
        log.info("resuming %s from step %d (%s)", run, state["step"], resume_from)
        claim.resumed(str(state["step"]))
        evaluated = {str(row["step"]) for row in state["history"]}
        for stale in run_dir.glob("eval_samples_step_*.jsonl"):  # evaluations after the checkpoint are redone
            if accelerator.is_main_process and str(samples_step(stale.name)) not in evaluated:
                stale.unlink()
    resumed_at = state["step"] if resumed else None  # that checkpoint is not written again
    live = LiveLog(run_dir / LIVE_LOG_FILE, resume_step=resumed_at) if accelerator.is_main_process else None
    accelerator.init_trackers(run, config=scalar_settings(s))
    started = time.perf_counter() - state["elapsed"]

    def track(step: int, prefix: str, row: dict) -> None:
        """Send a row's numbers to the live CSV and the trackers (main process)."""
        values = {f"{prefix}/{name}": value for name, value in row.items() if name != "step" and isinstance(value, (int, float))}
        if live is not None:
            live.log(step, values)
        accelerator.log(values, step=step)

    # the mode every training step runs in: 'eval' is the original's (its step-0 evaluation left the translator in eval mode)
    train_mode = s["translator_mode_in_training"] == "train"

    def evaluate(step) -> dict:
        unwrapped.eval()
        soft_batches = bridge.translate(unwrapped, examples, batch_size=eval_settings["batch_size"])
        generations = bridge.generate_from_soft(soft_batches, examples, max_new_tokens=eval_settings["max_new_tokens"])
        unwrapped.train(train_mode)
        samples = sample_rows(step, examples, baselines["source"], baselines["target"], generations, scored_as)
        atomic_write_jsonl(run_dir / samples_filename(step), samples)
        row = history_row(step, samples, scored_as)
        row["soft_token_spread"] = soft_token_spread(torch.cat(soft_batches))
        row["mean_soft_tokens"] = bridge.translator.soft_tokens  # K, with soft_tokens -1 resolved
        log.info("[Eval] Step %s | Source-alone acc: %.3f | Target-alone acc: %.3f | Bridged acc: %.3f | Soft-token spread: %.3f",
                 step, row["source_acc"], row["target_acc"], row["bridged_acc"], row["soft_token_spread"])  # fmt: skip
        return row

    translator.train(train_mode)
    losses_since_eval: list[dict] = []
    while True:
        step = state["step"]
        evaluated = {row["step"] for row in state["history"]}
        if (step % s["eval_every"] == 0 or step == s["train_steps"]) and step not in evaluated:
            stop = None
            if accelerator.is_main_process:
                row = evaluate(step)
                row["losses"] = _mean_losses(losses_since_eval)
                track(step, "eval", row)
                state["history"].append(row)
                stop = _early_stop_update(state, row, unwrapped, s["early_stop_patience"])
            state["stop_reason"] = broadcast_object_list([stop])[0]
            losses_since_eval = []
        if step % s["checkpoint_every"] == 0 and step > 0 and step != resumed_at:
            state["elapsed"] = time.perf_counter() - started
            save_checkpoint(accelerator, checkpoints, state)
        if state["stop_reason"] or step >= s["train_steps"]:
            break
        indices = batch_indices(step, global_batch, len(train_rows), s["seed"])
        shard = indices[accelerator.process_index :: accelerator.num_processes]
        with accelerator.autocast():
            values = bridge.losses(translator, [train_rows[i] for i in shard], step)
        if not torch.isfinite(values["total"]):
            bad = ", ".join(f"{name}={float(value.detach()):.4g}" for name, value in values.items())
            raise NonFiniteLossError(f"bridge run {run!r}: non-finite loss at step {step} ({bad}); no summary written")
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(values["total"])
        accelerator.clip_grad_norm_(translator.parameters(), s["grad_clip"])
        optimizer.step()
        scheduler.step()
        row = {name: round(float(value.detach()), 6) for name, value in values.items()}
        row.update(step=step + 1, lr=scheduler.get_last_lr()[0], seconds=round(time.perf_counter() - started, 3),
                   format_miss_rate=getattr(bridge, "format_miss_rate", None))  # fmt: skip
        state["loss_rows"].append(row)
        track(step + 1, "train", row)
        losses_since_eval.append(row)
        state["step"] = step + 1

    if not accelerator.is_main_process:
        return {}
    state["stop_reason"] = state["stop_reason"] or f"max_steps: trained all {s['train_steps']} steps"
    read_best = state["best"] is not None and s["final_weights"] == "best"
    if read_best:
        unwrapped.load_state_dict(state["best"]["translator"])
    # the weights read were evaluated at that step: the same answers, so they are not generated again
    read_step = state["best"]["step"] if read_best else state["step"]
    final = final_evaluation(run_dir, next(row for row in state["history"] if row["step"] == read_step))
    log.info("[Eval] Step final | the evaluation of step %s, whose weights it read | Bridged acc: %.3f", read_step, final["bridged_acc"])
    state["history"].append(final)
    track(state["step"], "final", final)
    accelerator.end_training()
    torch.save({"state_dict": unwrapped.state_dict(), "settings": s, "source_dim": frozen["source"].width,
                "target_dim": frozen["target"].width}, run_dir / (TRANSLATOR_FILE + ".tmp"))  # fmt: skip
    os.replace(run_dir / (TRANSLATOR_FILE + ".tmp"), run_dir / TRANSLATOR_FILE)
    atomic_write_jsonl(run_dir / HISTORY_FILE, state["history"])
    atomic_write_text(run_dir / LOSS_HISTORY_FILE, _loss_csv(state["loss_rows"]))
    summary = _summary(run, s, state, final, examples, frozen, config, time.perf_counter() - started)
    summary.update(references(scored_as, train_rows, examples, baselines["target"]), prompts=shown_as, scoring=scored_as)
    summary["notes"] += unscorable_note(dataset, scored_as)
    summary["source_legibility"] = legibility
    summary["resume"] = claim.summary()
    summary["caches_read"] = caches_read(source_cache, kl_cache)
    summary["final_weights_read"] = f"best (step {state['best']['step']})" if read_best else "last"
    summary["global_batch"] = global_batch  # per_device_batch × the processes that trained the run
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    claim.finish()
    return summary


def _mean_losses(rows: list[dict]) -> dict:
    if not rows:
        return {}
    return {name: sum(row[name] for row in rows) / len(rows) for name in LOSS_NAMES}


def _early_stop_update(state: dict, row: dict, translator, patience: int) -> str | None:
    """Track the best bridged accuracy as the original did: from the first evaluation after step 0 (the
    untrained translator is a reference, never kept) and above 0; the stop reason once ``patience``
    evaluations brought no new best."""
    if patience == 0 or row["step"] == 0:
        return None
    best = state["best"]
    if row["bridged_acc"] > (0.0 if best is None else best["bridged_acc"]):
        state["best"] = {"step": row["step"], "bridged_acc": row["bridged_acc"], "translator": copy.deepcopy(translator.state_dict())}
        state["stale_evals"] = 0
        return None
    state["stale_evals"] += 1
    if state["stale_evals"] >= patience:
        kept = "none above 0" if best is None else f"best {best['bridged_acc']:.3f} at step {best['step']}"
        return f"early_stop: no new best bridged accuracy for {patience} evaluations ({kept})"
    return None


def _notes(s, state, cut_prompts: list[int], eval_prompts: int) -> list[str]:
    """What a reader of the final accuracy must know about the weights it read and the prompts its source read."""
    notes = []
    if s["final_weights"] == "last" and state["best"] is not None:
        notes.append(f"final_weights last: the final evaluation read the last weights, as the original effectively did, "
                     f"not the best (step {state['best']['step']})")  # fmt: skip
    if s["final_weights"] == "best" and state["best"] is None:
        why = "early stopping is off, early_stop_patience 0" if s["early_stop_patience"] == 0 else "no evaluation after step 0 scored above 0"
        notes.append(f"final_weights best: no best was kept ({why}), so the final evaluation read the last weights")
    if s["prompt_mode"] != "soft_only":
        notes.append(f"prompt_mode {s['prompt_mode']}: the target read the whole prompt besides the soft tokens, so nothing was compressed")
    if cut_prompts:
        notes.append(f"max_prompt_tokens {s['max_prompt_tokens']}: the source read only the end of {len(cut_prompts)} of "
                     f"{eval_prompts} evaluation prompts (up to {max(cut_prompts)} tokens long)")  # fmt: skip
    return notes


def _summary(run, s, state, final, examples, frozen, config, wall_seconds) -> dict:
    peak = max(trained_evaluations(state["history"]), key=lambda row: row["bridged_acc"])
    target_tokens = [len(frozen["target"].tokenizer(e.prompt, add_special_tokens=False)["input_ids"]) for e in examples]
    source_tokens = [len(frozen["source"].tokenizer(e.prompt, add_special_tokens=False)["input_ids"]) for e in examples]
    mean_target_tokens = sum(target_tokens) / len(target_tokens)
    cut_prompts = cut_source_prompts(frozen["source"].tokenizer, [e.prompt for e in examples], s["max_prompt_tokens"])
    stamp = provenance(
        model_id=frozen["target"].model_id, revision=frozen["target"].revision, mask=None,
        config=config, seed=s["seed"], wall_seconds=wall_seconds,
    )  # fmt: skip
    stamp["source_model"] = model_identity(frozen["source"].model_id, frozen["source"].revision)
    return {
        "run": run, "study": "bridge", "origin": "trained", "role": None, "settings": s, "dataset": s["dataset"],
        "source_acc": final["source_acc"], "target_acc": final["target_acc"],
        "peak_bridged_acc": peak["bridged_acc"], "peak_step": peak["step"],
        "final_bridged_acc": final["bridged_acc"], "degradation": peak["bridged_acc"] - final["bridged_acc"],
        "final_soft_token_spread": final["soft_token_spread"],
        "stop_reason": state["stop_reason"], "trained_steps": state["step"], "wall_seconds": round(wall_seconds, 3),
        "soft_tokens": s["soft_tokens"], "resolved_soft_tokens": final["mean_soft_tokens"],
        "mean_prompt_tokens": {"target": mean_target_tokens, "source": sum(source_tokens) / len(source_tokens)},
        "compression": mean_target_tokens / final["mean_soft_tokens"] if s["prompt_mode"] == "soft_only" else None,
        "steps_evaluated": [row["step"] for row in state["history"]],
        "invalid_per_step": {str(row["step"]): row["invalid"] for row in state["history"]},
        "source_prompts_cut": len(cut_prompts),
        "log_check": None, "provenance": stamp, "notes": _notes(s, state, cut_prompts, len(examples)),
        **({"source_f1": final["source_f1"], "target_f1": final["target_f1"], "final_bridged_f1": final["bridged_f1"]} if "bridged_f1" in final else {}),
    }  # fmt: skip
