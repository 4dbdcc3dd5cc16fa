"""Parity of a re-run with a preserved run of the original: every key of the ``==== Config ====``
block its ``train.log`` echoes, the original's value beside our run's effective value.

``python -m ablation.bridge parity --config PRESET --run RUN --log TRAIN_LOG`` prints the table
and exits 1 when a key that has a counterpart here differs. A key has no counterpart when it
names a path (``log_dir``, ``save_path``), a switch of the original's machinery
(``no_compile``, ``show_eval_samples``) or a setting this workflow does not have. No key echoes the
translator's mode in training (``translator_mode_in_training``): the original's was a side effect
of its step-0 evaluation, not a flag.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import yaml

from ablation.bridge.data import prompt_task, scoring_task
from ablation.bridge.original_runs import LegacyImportError, parse_config_block
from ablation.bridge.settings import ORIGINAL_KL_MAX_TOKENS, default_processes, run_settings
from ablation.config import load_schema, validate_config

SAME, DIFFERS, NO_COUNTERPART = "same", "differs", "no counterpart"
# the original's key -> ours, where the run's settings name it alike or under another name
RUN_KEYS = {
    "soft_tokens": "soft_tokens", "eval_prompt_mode": "prompt_mode", "bottleneck_dim": "bottleneck", "depth": "depth",
    "heads": "heads", "lr": "lr", "weight_decay": "weight_decay", "train_steps": "train_steps",
    "warmup_steps": "warmup_steps", "per_device_batch": "per_device_batch", "eval_every": "eval_every", "seed": "seed",
    "early_stop_patience": "early_stop_patience", "info_nce_weight": "info_nce_weight",
    "decode_loss_weight": "decode_loss_weight", "decode_interval": "decode_interval", "kl_tokens": "kl_tokens",
    "prompt_alignment_weight": "prompt_alignment_weight", "dit_dim": "dit_dim", "dit_depth": "dit_depth",
    "dit_heads": "dit_heads", "dit_steps_train": "dit_steps_train", "dit_steps_eval": "dit_steps_eval",
    "dit_dropout": "dit_dropout", "dit_cfg": "dit_cfg", "dit_drop_cond": "dit_drop_cond", "dit_pool": "dit_pool",
    "dit_loss_weight": "dit_loss_weight", "dit_teacher": "dit_teacher",
    "world_size": "processes",  # not in the config block: the log's [Rank r/N] prefixes (original_runs.echoed_settings)
}  # fmt: skip
EVAL_KEYS = {"eval_samples": "samples", "eval_batch_size": "batch_size", "max_new_tokens": "max_new_tokens"}
TRANSLATOR_NAMES = {"dit": "dit", "bottleneck_gated": "cross"}  # the original's --bridge -> our translator


def our_value(key: str, settings: dict, config: dict):
    """Our effective value for the original's ``key``; ``NO_COUNTERPART`` where we have none."""
    bridge = config["bridge"]
    if key in RUN_KEYS:
        return settings.get(RUN_KEYS[key])  # None: a run summarised before the setting existed
    if key in EVAL_KEYS:
        return bridge["eval"][EVAL_KEYS[key]]
    if key in ("source_model", "target_model"):
        return bridge["models"][settings[key.removesuffix("_model")]]["id"]
    if key == "bridge":
        return settings["translator"]
    if key == "bf16":  # the original's --bf16 made the translator's weights bf16 too (translator_dtype)
        return settings["precision"] == "bf16" and settings.get("translator_dtype") == "bfloat16"
    if key == "dataset":
        return as_the_original_ran(settings["dataset"], bridge["datasets"][settings["dataset"]])
    if key == "kl_max_length" and settings.get("token_layout") == "original":  # ours reads the KL at the answer's positions
        return ORIGINAL_KL_MAX_TOKENS
    return NO_COUNTERPART


def parity_config(bridge: dict) -> dict:
    """What ``our_value`` reads of a config besides a run's settings: the report's parity table gets
    this much of the bridge config."""
    return {"bridge": {key: bridge[key] for key in ("models", "eval", "datasets")}}


def as_the_original_ran(dataset: str, source: dict) -> str:
    """Our dataset as the original's ``--dataset`` would name it: the original showed and scored every
    dataset as GSM8K (prompts: gsm8k, scoring: gsm8k), so any other form is named with it and differs."""
    prompts, scoring = prompt_task(dataset, source), scoring_task(dataset, source)
    return dataset if (prompts, scoring) == ("gsm8k", "gsm8k") else f"{dataset} (prompts: {prompts}, scoring: {scoring})"


def _equal(original, ours) -> bool:
    if isinstance(original, bool) or isinstance(ours, bool):
        return original is ours
    if isinstance(original, (int, float)) and isinstance(ours, (int, float)):
        return math.isclose(original, ours, rel_tol=1e-9, abs_tol=0.0)
    return original == ours


def parity_rows(original: dict, settings: dict, config: dict) -> list[dict]:
    """One row per key of the original's config block: key, original, ours, verdict."""
    rows = []
    for key, value in original.items():
        ours = our_value(key, settings, config)
        if isinstance(ours, str) and ours == NO_COUNTERPART:
            rows.append({"key": key, "original": value, "ours": None, "verdict": NO_COUNTERPART})
            continue
        compared = TRANSLATOR_NAMES.get(value, value) if key == "bridge" else value
        rows.append({"key": key, "original": value, "ours": ours, "verdict": SAME if _equal(compared, ours) else DIFFERS})
    return rows


def load_run(config_path: str | Path, run: str) -> tuple[dict, dict]:
    """A config file validated, and ``run``'s effective settings in it."""
    config = validate_config(yaml.safe_load(Path(config_path).read_text()))
    if run not in config["bridge"]["runs"]:
        raise ValueError(f"{config_path}: no bridge run {run!r}; configured: {', '.join(config['bridge']['runs']) or 'none'}")
    return config, run_settings(config["bridge"], run, load_schema(), config["seed"], default_processes(config))


def format_table(rows: list[dict]) -> str:
    """The rows as aligned text columns."""
    header = ("key", "original", "ours", "verdict")
    cells = [header] + [(r["key"], str(r["original"]), "" if r["ours"] is None else str(r["ours"]), r["verdict"]) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablation.bridge parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="config file (a preset) that defines the re-run")
    parser.add_argument("--run", required=True, help="the bridge run of --config that re-runs the preserved one")
    parser.add_argument("--log", required=True, help="the preserved run's train.log")
    args = parser.parse_args(argv)
    try:
        config, settings = load_run(args.config, args.run)
        original = parse_config_block(Path(args.log))
    except (ValueError, OSError, LegacyImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = parity_rows(original, settings, config)
    print(format_table(rows))
    differing = [row["key"] for row in rows if row["verdict"] == DIFFERS]
    counted = sum(row["verdict"] != NO_COUNTERPART for row in rows)
    print(f"\n{counted - len(differing)} of {counted} keys with a counterpart are the same"
          + (f"; differing: {', '.join(differing)}" if differing else ""))  # fmt: skip
    return 1 if differing else 0
