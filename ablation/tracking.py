"""Experiment trackers (config key ``tracking``) for fine-tunes and bridge runs, and the bridge's live CSV log.

The trackers are transformers' integrations (fine-tunes, ``report_to``) and accelerate's (bridge
runs, ``log_with``), never clients of our own. TensorBoard writes under the run directory
(``tensorboard/``); wandb, mlflow and trackio go wherever their own settings send them.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

# tracker name -> the package that provides it (what to pip install)
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}
DEFAULT_TRACKERS = ("tensorboard",)  # the schema's default of 'tracking'
LIVE_LOG_COLUMNS = ("step", "metric", "value")


def tracking_problems(config: dict) -> list[str]:
    """A message for each tracker the config names whose package is not installed."""
    return [
        f"config key 'tracking' names {tracker!r}, but its package is not installed: pip install {TRACKER_PACKAGES[tracker]}"
        for tracker in config.get("tracking", DEFAULT_TRACKERS)
        if importlib.util.find_spec(TRACKER_PACKAGES[tracker]) is None
    ]


def configured_trackers(config: dict) -> list[str]:
    return list(config.get("tracking", DEFAULT_TRACKERS))


def scalar_settings(settings: dict) -> dict:
    """The settings a tracker can store as hyperparameters: scalars only."""
    return {key: value for key, value in settings.items() if isinstance(value, (bool, int, float, str))}


class LiveLog:
    """A CSV of ``step,metric,value`` rows appended as training goes, readable while the run lasts.

    ``resume_step``: a resumed run first drops the rows logged after its checkpoint's step, which it
    is about to log again.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is None or not self.path.exists():
            self._rewrite([])
        else:
            with self.path.open(newline="") as handle:
                self._rewrite([row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step])

    def _rewrite(self, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LIVE_LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.path)

    def log(self, step: int, values: dict) -> None:
        """Append one row per numeric value of ``values`` at ``step``; None values are left out."""
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerows((step, name, value) for name, value in values.items() if isinstance(value, (int, float)))
