"""Small runs of the original code, written as its logs and sample files are (what the importer reads)."""

from __future__ import annotations

import json
from pathlib import Path

from ablation.bridge.answers import INVALID
from ablation.bridge.run_format import SIDES

GOLDS = ("18", "3", "1234", "-5")  # four questions per evaluation: accuracies are quarters
EVALS = {0: (3, 2, 0), 2: (3, 2, 2), 4: (3, 2, 1), "final": (3, 2, 2)}  # step -> correct (source, target, bridged)
CONFIG = {"bridge": "dit", "soft_tokens": "-1", "lr": "0.0001", "train_steps": "4", "bf16": "True",
          "dit_cfg_dropout": "None", "dataset": "gsm8k", "dit_pool": "mean"}
SUMMARY_LOG = "Run directory: runs/x\nEnd time: Wed Nov 19 02:07:05 AM PST 2025\nLogs: runs/x/exp/train.log\n"
CUDA_WARNING = "[W1119 00:12:49.259339933 CUDAAllocatorConfig.h:28] Warning: expandable_segments not supported"


def sample_rows(step, correct: tuple[int, int, int], question: str = "Question {index}?") -> list[dict]:
    """Rows whose first ``correct[i]`` answers of side i are right; wrong bridged answers are invalid."""
    rows = []
    for index, gold in enumerate(GOLDS):
        row = {"eval_step": str(step), "index": index, "question": question.format(index=index),
               "gold_full_text": f"Q: …\n#### {gold}", "gold_extracted": gold}
        for side, count in zip(SIDES, correct):
            answer = gold if index < count else (INVALID if side == "bridged" else "999")
            row[f"{side}_full"] = "no marker" if answer == INVALID else f"Reasoning.\n#### {answer}"
            row[f"{side}_extracted"] = answer
        rows.append(row)
    return rows


def eval_line(step, correct: tuple[int, int, int]) -> str:
    source, target, bridged = (count / len(GOLDS) for count in correct)
    head = "[Final Eval]" if step == "final" else f"[Eval] Step {step} |"
    return f"{head} Source-alone acc: {source:.3f} | Target-alone acc: {target:.3f} | Bridged acc: {bridged:.3f}"


def config_lines(config: dict = CONFIG) -> list[str]:
    return ["==== Config ====", *(f"{key}: {value}" for key, value in config.items()), "",
            "==== Reproducibility Settings ====", "Base seed: 1234"]


def log_text(body: list[str] | None = None, config: dict = CONFIG) -> str:
    body = [eval_line(step, correct) for step, correct in EVALS.items()] if body is None else body
    return "\n".join([CUDA_WARNING, *config_lines(config), *body]) + "\n"


def write_run(run_dir: Path, log: str | None = None, evals: dict = EVALS, *, experiment: str = "exp",
              question: str = "Question {index}?", summary_log: str | None = SUMMARY_LOG) -> Path:
    folder = run_dir / experiment
    folder.mkdir(parents=True)
    (folder / "train.log").write_bytes((log_text() if log is None else log).encode("utf-8"))
    for step, correct in evals.items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in sample_rows(step, correct, question))
        (folder / f"eval_samples_step_{step}.jsonl").write_bytes(text.encode("utf-8"))
    if summary_log is not None:
        (run_dir / "summary.log").write_text(summary_log, encoding="utf-8")
    return run_dir
