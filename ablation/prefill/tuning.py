"""Choosing the fine-tunes' learning rate, steps and replay share on a development split, not on the evaluation.

``snakemake tune_finetune`` fine-tunes every run at every point of ``finetune.tuning.grid`` and
evaluates each fine-tune on the tiny world's development tasks (stories that no evaluation item
tells, ``ablation.world.tasks.write_dev_tasks``) under ``prefill_bidir`` and ``causal``, beside
the base model. One point is chosen for all runs, so that they are compared at equal settings:

1. a point *keeps what the model knew* when no run loses more than ``max_side_effect`` of the
   base model's causal dev macro accuracy;
2. among those, the highest prefill_bidir dev macro accuracy, averaged over the runs, wins; a tie
   goes to fewer steps, then the lower learning rate, then the smaller replay share;
3. when no point keeps within the tolerance, the one whose worst run loses least is chosen, and
   the choice says so.

The config's ``finetune.defaults`` are then set to the choice by hand (README "Fine-tuning"):
the main command never runs the grid. The grid's table and the choice's file are written by
``ablation.prefill.report.tuning``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ablation.config import finetune_settings

TUNED_KEYS = ("learning_rate", "max_steps", "replay_fraction")
TRIAL_NAME = "lr{learning_rate:g}_steps{max_steps}_replay{replay_fraction:g}"
CRITERION = (
    "one setting for all runs: among the grid points where no run loses more than max_side_effect of the "
    "base model's causal dev macro accuracy, the highest prefill_bidir dev macro accuracy averaged over "
    "the runs (ties: fewer steps, lower learning rate, smaller replay share); if none keeps within "
    "max_side_effect, the point whose worst run loses least"
)


def trial_grid(grid: Mapping[str, Sequence]) -> dict[str, dict]:
    """Trial name -> its settings: one trial per combination of the grid's listed values."""
    trials = {}
    for values in itertools.product(*(grid[key] for key in TUNED_KEYS)):
        settings = dict(zip(TUNED_KEYS, values))
        trials[TRIAL_NAME.format(**settings)] = settings
    return trials


def trial_settings(config: dict, run: str, trial: Mapping) -> dict:
    """A run's fine-tune settings with the grid point's values in place of the configured ones.

    A grid point is a dev-split experiment, never a result to publish: it uploads nothing to the
    hub whatever the run's ``hub_repo_id`` says.
    """
    return {**finetune_settings(config, run), **trial, "hub_repo_id": None}


@dataclass(frozen=True)
class TrialResult:
    """One grid point's fine-tunes, measured on the dev split: macro accuracy per run and mask."""

    trial: str
    settings: Mapping[str, float]
    prefill: Mapping[str, float]  # run -> dev macro acc under prefill_bidir
    causal: Mapping[str, float]  # run -> dev macro acc under causal

    @property
    def mean_prefill(self) -> float:
        return sum(self.prefill.values()) / len(self.prefill)

    def worst_loss(self, base_causal: float) -> float:
        """The largest causal dev macro accuracy any run lost against the base model."""
        return max(base_causal - value for value in self.causal.values())

    def keeps_knowledge(self, base_causal: float, max_side_effect: float) -> bool:
        """Whether no run lost more than ``max_side_effect`` under causal eval."""
        return self.worst_loss(base_causal) <= max_side_effect

    def cost(self) -> tuple:
        """Cheaper and gentler first: steps, learning rate, replay share."""
        return self.settings["max_steps"], self.settings["learning_rate"], self.settings["replay_fraction"]


@dataclass(frozen=True)
class Choice:
    result: TrialResult
    keeps_knowledge: bool  # whether any grid point kept every run within max_side_effect


def choose_trial(results: Sequence[TrialResult], base_causal: float, max_side_effect: float) -> Choice:
    """The grid point the criterion (module docstring) picks."""
    if not results:
        raise ValueError("the tuning grid has no trials to choose from")
    keeping = [r for r in results if r.keeps_knowledge(base_causal, max_side_effect)]
    if keeping:
        # rounded so that equal accuracies summed in another order still tie
        best = min(keeping, key=lambda r: (-round(r.mean_prefill, 9), r.cost()))
        return Choice(best, keeps_knowledge=True)
    return Choice(min(results, key=lambda r: (r.worst_loss(base_causal), r.cost())), keeps_knowledge=False)
