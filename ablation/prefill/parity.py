"""``python -m ablation.prefill parity [--config PATH]``: the prefill study's settings against the original's.

Every setting of a config that has a counterpart in the original's scripts is listed with the
original's value, the config's value and same / differs; the command exits 1 on a difference, so
the real preset (the default ``--config``) can be checked in CI. The original's values are those its
scripts set, as read from its code, and seed 001's Stage 5 run (docs/prefill.md); a setting the originals do not give is listed as not compared, with why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ablation.config import finetune_settings, validate_config

PRESET = Path(__file__).resolve().parents[2] / "presets" / "ministral-3b.yaml"

ORIGINAL_MODEL = {
    "seed": 42,  # its scripts' --seed default, never overridden: set_seed and the Trainer's shuffle
    "model.id": "mistralai/Ministral-3-3B-Instruct-2512",
    "model.dtype": "bfloat16",
    "model.attn_implementation": "sdpa",
    # the original's prompts, no BOS and its per-token metric
    "eval.task_set": "original",
    "eval.limit": 500,
    # Stage 2 and Stage 4 ran the is_causal=False patch, on the base model and on the fine-tunes
    "eval.masks includes full_bidir": True,
    "eval.finetune_full_bidir": True,
    # eval_mcq.py: log_softmax of the bf16 logits and the continuation's sum in bf16
    "eval.logprob_dtype": "model",
    "finetune.dataset": "yahma/alpaca-cleaned",
}

ORIGINAL_DATA = {
    "train_samples": 50000,
    "eval_samples": 250,
    "eval_fraction": 0.02,
    "max_seq_len": 1024,
    "strip_fields": True,
    "prompt_bos": False,
    "long_rows": "truncate",
    "empty_responses": "error",
    "data_split_seed": 42,
}
ORIGINAL_STAGE3 = {
    **ORIGINAL_DATA,
    "max_steps": 1200,
    "per_device_batch_size": 1,
    "gradient_accumulation_steps": 16,
    "learning_rate": 2.0e-5,
    "weight_decay": 0.1,
    "warmup_ratio": 0.03,
    "optimizer": "adafactor",
    "lr_scheduler": "cosine",
    "precision": "bf16",
    "gradient_checkpointing": True,
    "eval_steps": 200,
    "logging_steps": 10,
    "kill_if_no_learning": {"after_steps": 150, "min_improvement": 0.08, "mode": "first_log_to_best"},
    "auto_stop": None,
}
ORIGINAL_RUNS = {
    "stage3a_causal": {**ORIGINAL_STAGE3, "train_mask": "causal"},
    "stage3b_prefix_lm": {**ORIGINAL_STAGE3, "train_mask": "prefill_bidir"},
    # seed 001's Stage 5 run; the seeds do not say whether its kill rule was on
    "stage5_6000": {
        **{key: value for key, value in ORIGINAL_STAGE3.items() if key != "kill_if_no_learning"},
        "train_mask": "prefill_bidir",
        "max_steps": 6000,
        "lr_scheduler": "constant_with_warmup",
        "eval_steps": 100,
        "auto_stop": {"patience_evals": 4, "min_delta": 0.003, "min_steps": 600, "mode": "ignore_before_min_steps"},
    },
    # the published Stage 5 table gives 5C's and 5B's step counts only
    "stage5c_6500": {"train_mask": "prefill_bidir", "max_steps": 6500},
    "stage5b_10000": {"train_mask": "prefill_bidir", "max_steps": 10000},
}
# settings with a counterpart in the original that cannot change a result, so are not compared:
# setting -> (the original's value, why)
NOT_COMPARED = {
    "eval.batch_size": (1, "a score is the same at any batch size, up to float rounding"),
    "finetune.defaults.save_steps": ("no intermediate saves", "checkpoints only let a killed run resume"),
}


def _value(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def parity_rows(config: dict) -> list[tuple[str, object, object, str]]:
    """(setting, original value, config value, 'same' / 'differs' / 'not compared: why') per setting."""
    rows = []

    def compare(name: str, original, ours) -> None:
        if isinstance(original, dict) and isinstance(ours, dict):  # a stop rule: key by key
            for key, value in original.items():
                compare(f"{name}.{key}", value, ours.get(key))
            return
        rows.append((name, original, ours, "same" if original == ours else "differs"))

    for name, original in ORIGINAL_MODEL.items():
        if name == "eval.masks includes full_bidir":
            compare(name, original, "full_bidir" in config["eval"]["masks"])
        else:
            compare(name, original, _value(config, name))
    runs = config["finetune"]["runs"]
    for run, originals in ORIGINAL_RUNS.items():
        if run not in runs:
            rows.append((f"finetune.runs.{run}", "a run", "missing", "differs"))
            continue
        settings = finetune_settings(config, run)
        for key, original in originals.items():
            compare(f"finetune.runs.{run}.{key}", original, settings.get(key))  # an unset rule is None
    for run in runs:
        if run not in ORIGINAL_RUNS:
            rows.append((f"finetune.runs.{run}", "none", "a run", "not compared: no counterpart in the original"))
    for name, (original, why) in NOT_COMPARED.items():
        rows.append((name, original, _value(config, name), f"not compared: {why}"))
    return rows


def format_rows(rows: list[tuple[str, object, object, str]]) -> str:
    header = ("setting", "original", "config", "verdict")
    cells = [header] + [tuple(map(str, row)) for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] for row in cells
    )


def parity(config_path: str | Path = PRESET) -> int:
    """Print the comparison of ``config_path`` (validated, defaults filled); 0 when nothing differs, else 1."""
    config = validate_config(yaml.safe_load(Path(config_path).read_text()))
    rows = parity_rows(config)
    print(format_rows(rows))
    compared = [row for row in rows if row[3] in ("same", "differs")]
    differing = [row[0] for row in compared if row[3] == "differs"]
    print(f"\n{len(differing)} of {len(compared)} compared settings differ from the original{': ' if differing else ''}{', '.join(differing)}")
    return 1 if differing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablation.prefill", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("parity", help="compare a config's settings with the original study's; exit 1 on a difference")
    check.add_argument("--config", default=str(PRESET), help="config file (default: the real preset)")
    arguments = parser.parse_args(argv)
    return parity(arguments.config)
