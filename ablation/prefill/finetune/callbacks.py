"""Trainer callbacks: stop rules, a non-finite-loss guard and a live loss history.

Stop rules read ``state.log_history``, which checkpoints carry, so they judge a resumed run
on its whole history rather than on the steps since the restart.
"""

from __future__ import annotations

import csv
import io
import math
import time

from transformers import TrainerCallback

from ablation.io import atomic_write_text

HISTORY_COLUMNS = ("step", "epoch", "elapsed_seconds", "train_loss", "eval_loss", "learning_rate")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stops and writes no final model."""


class StopRecord(TrainerCallback):
    """Why training ended, shared by the stop rules and the run summary.

    Only a stop that cut training short counts: a rule firing at the last step, or on the evaluation of
    the final weights after training, leaves the reason at ``max_steps``.
    """

    def __init__(self) -> None:
        self.reason = "max_steps"
        self.detail = ""
        self.training_ended = False

    def on_train_end(self, args, state, control, **kwargs):
        self.training_ended = True

    def stop(self, control, state, reason: str, detail: str) -> None:
        if self.training_ended or state.global_step >= state.max_steps:
            return
        self.reason, self.detail = reason, detail
        control.should_training_stop = True


def train_losses(state) -> list[tuple[int, float]]:
    return [(entry["step"], entry["loss"]) for entry in state.log_history if "loss" in entry]


def eval_losses(state) -> list[tuple[int, float]]:
    return [(entry["step"], entry["eval_loss"]) for entry in state.log_history if "eval_loss" in entry]


# kill_if_no_learning.mode: which logged loss is the start and which is compared with it
KILL_MODES = ("first_log_to_best", "first_step_to_latest")
# auto_stop.mode: what an evaluation before min_steps counts for
AUTO_STOP_MODES = ("ignore_before_min_steps", "count_before_min_steps")


def check_mode(key: str, mode: str, allowed: tuple[str, ...]) -> str:
    if mode not in allowed:
        raise ValueError(f"unknown {key} {mode!r}; allowed: {', '.join(allowed)}")
    return mode


def logs_first_step(kill_if_no_learning: dict | None) -> bool:
    """Log the step-1 loss unless the original's kill rule runs: its first loss was the first regular log."""
    return not kill_if_no_learning or kill_if_no_learning["mode"] != "first_log_to_best"


class NoLearningStop(TrainerCallback):
    """From ``after_steps`` on, stop unless the train loss fell by ``min_improvement`` since the first log.

    ``first_log_to_best`` (the original's ``KillIfNoLearningCallback``) compares the first logged loss
    with the lowest logged so far; ``first_step_to_latest`` compares the step-1 loss with the latest.
    Which log comes first is the Trainer's ``logging_first_step`` (``logs_first_step``).
    """

    def __init__(self, after_steps: int, min_improvement: float, mode: str, record: StopRecord) -> None:
        self.after_steps, self.min_improvement, self.record = after_steps, min_improvement, record
        self.mode = check_mode("kill_if_no_learning.mode", mode, KILL_MODES)

    def on_log(self, args, state, control, logs=None, **kwargs):
        losses = [loss for _, loss in train_losses(state)]
        if state.global_step < self.after_steps or len(losses) < 2:
            return
        compared = min(losses) if self.mode == "first_log_to_best" else losses[-1]
        improvement = losses[0] - compared
        if improvement < self.min_improvement:
            self.record.stop(
                control,
                state,
                "no_learning",
                f"train loss improved by {improvement:.4f} < {self.min_improvement} after {state.global_step} steps ({self.mode})",
            )


class EvalLossPlateauStop(TrainerCallback):
    """Stop when eval loss has not beaten its best by ``min_delta`` for ``patience`` evals in a row.

    ``ignore_before_min_steps`` (the original's ``StopOnEvalPlateauCallback``) reads only the evals
    from ``min_steps`` on: an earlier one neither sets the best nor counts. ``count_before_min_steps``
    reads every eval and only holds the stop back until ``min_steps``.
    """

    def __init__(self, patience: int, min_delta: float, min_steps: int, mode: str, record: StopRecord) -> None:
        self.patience, self.min_delta, self.min_steps, self.record = patience, min_delta, min_steps, record
        self.mode = check_mode("auto_stop.mode", mode, AUTO_STOP_MODES)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        counted = eval_losses(state)
        if self.mode == "ignore_before_min_steps":
            counted = [(step, loss) for step, loss in counted if step >= self.min_steps]
        best, stale = math.inf, 0
        for _, loss in counted:
            if loss < best - self.min_delta:
                best, stale = loss, 0
            else:
                stale += 1
        if stale >= self.patience and state.global_step >= self.min_steps:
            self.record.stop(
                control,
                state,
                "auto_stop_plateau",
                f"eval loss did not improve by {self.min_delta} for {stale} evals (best {best:.4f}, {self.mode})",
            )


class NonFiniteLossGuard(TrainerCallback):
    """Raise as soon as a logged train or eval loss is NaN or infinite."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "eval_loss"):
            if key in (logs or {}) and not math.isfinite(logs[key]):
                raise NonFiniteLossError(f"{key} became {logs[key]} at step {state.global_step}; stopping without a final model")


class LossHistoryWriter(TrainerCallback):
    """Stamp each log with elapsed wall time and rewrite ``loss_history.csv`` from the whole history.

    Elapsed time continues across resumes, so throughput (s/step) can be read off a running job.
    """

    def __init__(self, path) -> None:
        self.path = path
        self.started = time.perf_counter()
        self.elapsed_before_resume: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.elapsed_before_resume is None:
            self.elapsed_before_resume = recorded_elapsed_seconds(state.log_history[:-1])
        state.log_history[-1]["elapsed_seconds"] = self.elapsed_before_resume + time.perf_counter() - self.started
        if state.is_world_process_zero:
            atomic_write_text(self.path, history_csv(state.log_history))


def recorded_elapsed_seconds(log_history: list[dict]) -> float:
    """The training time a resumed run's checkpoint carries (its last ``elapsed_seconds``); 0 for a fresh run."""
    stamped = [entry["elapsed_seconds"] for entry in log_history if "elapsed_seconds" in entry]
    return stamped[-1] if stamped else 0.0


def history_csv(log_history: list[dict]) -> str:
    """One row per logged step: train and eval losses of the same step merged."""
    rows: dict[int, dict] = {}
    for entry in log_history:
        if "loss" not in entry and "eval_loss" not in entry:
            continue
        row = rows.setdefault(entry["step"], {"step": entry["step"]})
        row["epoch"] = entry.get("epoch", row.get("epoch"))
        row["elapsed_seconds"] = entry.get("elapsed_seconds", row.get("elapsed_seconds"))
        if "loss" in entry:
            row["train_loss"] = entry["loss"]
            row["learning_rate"] = entry.get("learning_rate")
        if "eval_loss" in entry:
            row["eval_loss"] = entry["eval_loss"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for step in sorted(rows):
        writer.writerow(rows[step])
    return buffer.getvalue()


class ThroughputMeter(TrainerCallback):
    """Training seconds, seconds per step and tokens per second of all the run's steps, across attempts.

    A resumed run adds the time its checkpoint recorded (the clock of ``loss_history.csv``) to its own, so
    the summary agrees with the history; work an earlier attempt lost after its last checkpoint is not counted.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.earlier_attempts_seconds = recorded_elapsed_seconds(state.log_history)

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = self.earlier_attempts_seconds + time.perf_counter() - self.started
        self.seconds_per_step = self.seconds / state.global_step if state.global_step else None
        self.tokens_per_second = state.num_input_tokens_seen / self.seconds if self.seconds else None
