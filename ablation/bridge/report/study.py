"""What the bridge report reads: every run's summary and samples, the inference benchmark, the roles.

A Snakemake rule names its inputs in one flat mapping (``ablation.layout.bridge_report_paths``):
``run_<name>`` -> the run's ``summary.json`` (for a reused run, the summary of the run that trained
for it; for a legacy run, its import), ``inference_<run>`` -> a benchmark's ``summary.json``.
History and per-question samples are read from beside each summary. A role whose run has no
input is reported as not yet run; nothing here needs every run to exist.

Paired comparisons pair the questions two evaluations share (same index and question text) and
take ``ablation.stats``' paired bootstrap, the benchmark's own interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ablation.bridge.answers import score_extracted
from ablation.bridge.data import unscorable_note
from ablation.bridge.run_format import FINAL_STEP, HISTORY_FILE, samples_filename
from ablation.bridge.prompts import asked_question
from ablation.stats import bootstrap_mean_ci, mcnemar_exact, paired_bootstrap_difference
from ablation.io import read_json, read_jsonl
from ablation.layout import BRIDGE_INFERENCE_PREFIX, BRIDGE_RUN_PREFIX

NOT_YET_RUN = "not yet run"


@cache
def _samples(path: Path) -> tuple[dict, ...]:
    return tuple(read_jsonl(path))


@dataclass(frozen=True, eq=False)
class BridgeRun:
    """A configured or legacy run and the files of the run that holds its numbers."""

    name: str
    summary: Mapping
    history: tuple[dict, ...]
    directory: Path
    description: str = ""

    @property
    def origin(self) -> str:
        return self.summary["origin"]  # "trained" or "legacy"

    @property
    def trained_run(self) -> str:
        """The run whose files these are: ``name`` itself, or the run a reused run reads."""
        return self.summary["run"]

    @property
    def dataset(self) -> str:
        return self.summary["dataset"]

    @property
    def scoring(self) -> str:
        """The task whose rule scored the answers (``bridge.datasets.<dataset>.scoring``); runs recorded
        before the setting used their dataset's own."""
        return self.summary.get("scoring", self.dataset)

    @property
    def unscorable(self) -> bool:
        """Whether no answer could score (HotpotQA under GSM8K's rule, as the original ran it)."""
        return bool(unscorable_note(self.dataset, self.scoring))

    @property
    def soft_tokens_setting(self) -> int | None:
        """``soft_tokens`` as configured (or as the legacy log's config block printed it)."""
        return self.summary.get("soft_tokens")

    @property
    def soft_tokens(self) -> int | None:
        """K, the soft tokens the run trained with: its setting, or the fixed K that a setting <= 0
        resolved to (the source tokenizer's ``model_max_length``, capped; a run trained before its
        summary recorded it has it in its history); None where that is unknown."""
        setting = self.soft_tokens_setting
        if setting is not None and setting > 0:
            return setting
        recorded = self.history[-1].get("mean_soft_tokens") if self.history else None
        return self.summary.get("resolved_soft_tokens", recorded)

    @property
    def k_order(self) -> float:
        """Sort key along a K sweep: fewest soft tokens first, an unknown K last."""
        return math.inf if self.soft_tokens is None else self.soft_tokens

    @property
    def compression(self) -> float | None:
        """Prompt tokens per soft token; None where the prompt length is unknown (a legacy run)."""
        return self.summary.get("compression")

    @property
    def final_step(self) -> int | str:
        """The evaluation called final: the kept translator's, or a legacy run's last one."""
        return self.summary["steps_evaluated"][-1]

    @property
    def last_trained_step(self) -> int | None:
        steps = [step for step in self.summary["steps_evaluated"] if step != FINAL_STEP]
        return max(steps) if steps else None

    @property
    def stopped_early(self) -> bool:
        return str(self.summary.get("stop_reason") or "").startswith("early_stop")

    def samples(self, step: int | str) -> tuple[dict, ...]:
        return _samples(self.directory / samples_filename(step))

    def scores(self, step: int | str, side: str = "bridged") -> dict[tuple[int, str], float]:
        """(index, question asked) -> 1.0 / 0.0: was ``side``'s answer right at evaluation ``step``. Keyed by the
        question asked, so a preserved run's rows (which hold the whole prompt) pair with ours."""
        return {
            (row["index"], asked_question(row["question"])): float(score_extracted(self.scoring, row[f"{side}_extracted"], row["gold_extracted"])["correct"])
            for row in self.samples(step)
        }

    def accuracy_interval(self, step: int | str, side: str = "bridged") -> dict:
        """``{"mean", "ci95"}`` of ``side``'s accuracy at ``step``, bootstrapped over questions."""
        return bootstrap_mean_ci(list(self.scores(step, side).values()))


def paired_difference(first: Mapping[tuple, float], second: Mapping[tuple, float]) -> dict | None:
    """``first − second`` over the questions both scored: mean, 95% paired-bootstrap interval, n, McNemar p.

    None when the two share no question (different datasets or eval sets).
    """
    common = [key for key in first if key in second]
    if not common:
        return None
    a, b = [first[key] for key in common], [second[key] for key in common]
    return {**paired_bootstrap_difference(a, b), "n": len(common), "mcnemar_p": mcnemar_exact(a, b)}


@dataclass(frozen=True, eq=False)
class BridgeStudy:
    """The roles, the runs that have files, the inference benchmarks and ``bridge.report``'s settings."""

    roles: Mapping[str, str | None]  # role -> run name
    runs: Mapping[str, BridgeRun]  # run name -> its files, for the runs that have any
    inference: Mapping[str, Mapping]  # benchmarked run -> the benchmark's summary.json
    report: Mapping  # bridge.report
    sources: Mapping[str, Path] = field(default_factory=dict)  # input key -> file, for links
    descriptions: Mapping[str, str] = field(default_factory=dict)
    experiment: str | None = None
    reproductions: Mapping[str, str] = field(default_factory=dict)  # legacy run -> the run that re-runs it
    parity_config: Mapping = field(default_factory=dict)  # ablation.bridge.parity.parity_config: what parity reads besides a run's settings
    forced_prompt_modes: Mapping[str, bool] = field(default_factory=dict)  # configured run -> ablation.bridge.settings.forced_prompt_modes

    def run_of(self, role: str) -> BridgeRun | None:
        """The run playing ``role``; None when no run is named or it has no files yet."""
        name = self.roles.get(role)
        return None if name is None else self.runs.get(name)

    def prompt_mode_forced(self, run: BridgeRun) -> bool:
        """Whether ``run``'s own settings had their prompt mode forced: a configured run's from the
        config (a reused run's summary is its owner's), a legacy run's from its summary."""
        return self.forced_prompt_modes.get(run.name, bool(run.summary["settings"].get("prompt_mode_forced")))

    def roles_of(self, run: str) -> list[str]:
        return [role for role, name in self.roles.items() if name == run]

    def shown_runs(self) -> list[BridgeRun]:
        """Every run with files, once per trained run: in role order, then the runs without a role."""
        ordered = [self.runs[name] for name in dict.fromkeys(self.roles.values()) if name in self.runs]
        ordered += [run for name, run in self.runs.items() if name not in self.roles.values()]
        seen, shown = set(), []
        for run in ordered:
            if run.trained_run not in seen:
                seen.add(run.trained_run)
                shown.append(run)
        return shown


def load_bridge_study(
    paths: Mapping[str, str | Path],
    *,
    roles: Mapping[str, str | None],
    report: Mapping,
    descriptions: Mapping[str, str] | None = None,
    experiment: str | None = None,
    reproductions: Mapping[str, str] | None = None,
    parity_config: Mapping | None = None,
    forced_prompt_modes: Mapping[str, bool] | None = None,
) -> BridgeStudy:
    """Read every ``run_<name>`` and ``inference_<run>`` file named in ``paths``; other keys are an error."""
    descriptions = dict(descriptions or {})
    runs, inference = {}, {}
    for key, path in paths.items():
        path = Path(path)
        if key.startswith(BRIDGE_RUN_PREFIX):
            name = key.removeprefix(BRIDGE_RUN_PREFIX)
            history = tuple(read_jsonl(path.parent / HISTORY_FILE))
            runs[name] = BridgeRun(name, read_json(path), history, path.parent, descriptions.get(name, ""))
        elif key.startswith(BRIDGE_INFERENCE_PREFIX):
            inference[key.removeprefix(BRIDGE_INFERENCE_PREFIX)] = read_json(path)
        else:
            raise ValueError(f"unknown bridge report input {key!r}: expected {BRIDGE_RUN_PREFIX}<run> or {BRIDGE_INFERENCE_PREFIX}<run>")
    return BridgeStudy(
        roles=dict(roles), runs=runs, inference=inference, report=report,
        sources={key: Path(path) for key, path in paths.items()}, descriptions=descriptions, experiment=experiment,
        reproductions=dict(reproductions or {}), parity_config=dict(parity_config or {}),
        forced_prompt_modes=dict(forced_prompt_modes or {}),
    )  # fmt: skip
