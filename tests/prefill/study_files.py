"""Hand-made metrics, fine-tune summaries and study files shared by the report tests (no tests here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ablation.prefill.report import load_study, study_paths

TINY_TASKS = ("tiny_hellaswag", "tiny_piqa", "tiny_arc_easy", "tiny_arc_challenge", "tiny_winogrande")
REAL_TASKS = ("hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande")
CHANCES = (0.25, 0.5, 0.25, 0.25, 0.5)

# Per-task acc of every evaluation of the synthetic study, in TINY_TASKS order.
ACCS = {
    "stage1": (0.62, 0.79, 0.81, 0.59, 0.67),
    "stage2_prefill_bidir": (0.24, 0.53, 0.24, 0.25, 0.52),
    "stage2_full_bidir": (0.30, 0.55, 0.30, 0.27, 0.50),
    "stage4_stage3a_causal": (0.30, 0.58, 0.30, 0.26, 0.50),
    "side_effect_stage3a_causal": (0.63, 0.78, 0.80, 0.58, 0.66),
    "stage4_stage3b_prefix_lm": (0.45, 0.66, 0.55, 0.40, 0.55),
    "side_effect_stage3b_prefix_lm": (0.58, 0.75, 0.76, 0.55, 0.62),
    "full_bidir_after_ft_stage3a_causal": (0.28, 0.54, 0.28, 0.26, 0.50),
    "full_bidir_after_ft_stage3b_prefix_lm": (0.34, 0.60, 0.36, 0.25, 0.50),
}
RUNS = {"stage3a_causal": "causal", "stage3b_prefix_lm": "prefill_bidir"}


def make_metrics(
    accs,
    *,
    mask: str = "causal",
    model: str = "base",
    tasks=TINY_TASKS,
    macro: float | None = None,
    n: int = 300,
    task_set: str = "tiny",
) -> dict:
    """A metrics.json-shaped dict; winogrande has no acc_norm, as in lm-eval."""
    per_task = {
        task: {
            "acc": acc,
            "acc_stderr": math.sqrt(acc * (1 - acc) / n),
            "acc_norm": None if task.endswith("winogrande") else acc + 0.01,
            "acc_norm_stderr": None if task.endswith("winogrande") else math.sqrt(acc * (1 - acc) / n),
            "n": n,
            "chance": chance,
        }
        for task, acc, chance in zip(tasks, accs, CHANCES)
    }
    mean = sum(accs) / len(accs)
    return {
        "tasks": per_task,
        "macro_acc": mean if macro is None else macro,
        "macro_acc_norm": sum(e["acc_norm"] if e["acc_norm"] is not None else e["acc"] for e in per_task.values()) / len(accs),
        "chance_macro": sum(CHANCES) / len(CHANCES),
        "task_set": task_set,
        "limit": None,
        "scoring": "single_pass" if mask == "full_bidir" else "shared_prefill",  # the workflow's default strategies
        "requests": 4200,
        "requests_per_second": 350.0,
        "provenance": {
            "model": {"id": model, "local_dir_sha256": "ab" * 32},
            "mask": mask,
            "code_commit": "2144bcc",
            "config_sha256": "cd" * 32,
            "library_versions": {},
            "seed": 1234,
            "wall_seconds": 12.3,
            "created_utc": "2026-01-01T00:00:00Z",
            "host": "test",
        },
    }


def make_summary(run: str, train_mask: str, stop_reason: str = "max_steps", steps_run: int = 150) -> dict:
    return {
        "run": run,
        "train_mask": train_mask,
        "max_steps": 150,
        "steps_run": steps_run,
        "epochs": steps_run / 375,
        "stop_reason": stop_reason,
        "final_eval_loss": 1.16,
        "best_eval_loss": 1.12,
        "train_loss": 1.05,
        "tokens_seen": 1.2e7,
        "tokens_per_second": 3500.0,
        "provenance": {"wall_seconds": 3400.0},
    }


def loss_history_csv(steps_run: int, start: float) -> str:
    """Train loss every 5 steps, eval loss every 25, empty where not logged."""
    lines = ["step,epoch,train_loss,eval_loss,learning_rate"]
    for step in range(5, steps_run + 1, 5):
        train = start / (1 + step / 50)
        evaluation = f"{start * 1.1 / (1 + step / 60):.4f}" if step % 25 == 0 else ""
        lines.append(f"{step},{step / 375:.4f},{train:.4f},{evaluation},0.001")
    return "\n".join(lines) + "\n"


def write_study_files(
    results: Path, runs=RUNS, stopped_early: str = "stage3b_prefix_lm", full_bidir_after_ft: bool = False
) -> dict[str, Path]:
    """The synthetic study's files in the workflow's layout; returns the condition mapping."""
    paths = study_paths(results, runs, full_bidir_after_ft=full_bidir_after_ft)
    for key, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if key.startswith("finetune_"):
            run = key.removeprefix("finetune_")
            early = run == stopped_early
            steps = 100 if early else 150
            summary = make_summary(run, runs[run], "auto_stop_plateau" if early else "max_steps", steps)
            path.write_text(json.dumps(summary))
            (path.parent / "loss_history.csv").write_text(loss_history_csv(steps, 2.0 if early else 2.4))
            continue
        mask = path.parent.name
        path.write_text(json.dumps(make_metrics(ACCS[key], mask=mask, model=path.parent.parent.name)))
    return paths


def synthetic_study(results: Path, **kwargs):
    return load_study(write_study_files(results, **kwargs), train_masks=RUNS, experiment="tiny-prefill-ablation")
