"""Where each stage's files live under the results directory, and the report's condition keys.

Shared by the Snakemake rules and the report, kept free of heavy imports so the Snakefile
parses quickly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

STAGE1 = "stage1"  # eval(base, causal): the baseline
STAGE2 = "stage2_prefill_bidir"  # eval(base, prefill_bidir): the clean prefill ablation
FULL_BIDIR = "stage2_full_bidir"  # eval(base, full_bidir): the original study's leaky patch
STAGE4_PREFIX = "stage4_"  # eval(<run>, prefill_bidir): ablated after the fine-tune
SIDE_EFFECT_PREFIX = "side_effect_"  # eval(<run>, causal): the fine-tune without the ablation
# eval(<run>, full_bidir): the mask of the original study's published Stage 4 and Stage 5 "ablated" numbers
FULL_BIDIR_AFTER_FT_PREFIX = "full_bidir_after_ft_"
FINETUNE_PREFIX = "finetune_"  # <run>'s summary.json

# The files an evaluation writes into its directory, and those a fine-tune writes into its own.
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.jsonl"
FINAL_MODEL_DIR = "final"
SUMMARY_FILE = "summary.json"
LOSS_HISTORY_FILE = "loss_history.csv"


def eval_dir(results_dir: str | Path, model: str, mask: str) -> Path:
    """``model`` is ``base`` or a fine-tune run's name."""
    return Path(results_dir) / "eval" / model / mask


def eval_metrics_path(results_dir: str | Path, model: str, mask: str) -> Path:
    return eval_dir(results_dir, model, mask) / METRICS_FILE


def finetune_dir(results_dir: str | Path, run: str) -> Path:
    return Path(results_dir) / "finetune" / run


def study_paths(
    results_dir: str | Path,
    runs: Iterable[str] = (),
    *,
    base_model: str = "base",
    full_bidir: bool = True,
    side_effect: bool = True,
    finetune: bool = True,
    full_bidir_after_ft: bool = False,
) -> dict[str, Path]:
    """The report's condition key -> file mapping for this layout; usable as a rule's ``input: **study_paths(...)``."""
    paths = {
        STAGE1: eval_metrics_path(results_dir, base_model, "causal"),
        STAGE2: eval_metrics_path(results_dir, base_model, "prefill_bidir"),
    }
    if full_bidir:
        paths[FULL_BIDIR] = eval_metrics_path(results_dir, base_model, "full_bidir")
    for run in runs:
        paths[STAGE4_PREFIX + run] = eval_metrics_path(results_dir, run, "prefill_bidir")
        if side_effect:
            paths[SIDE_EFFECT_PREFIX + run] = eval_metrics_path(results_dir, run, "causal")
        if full_bidir_after_ft:
            paths[FULL_BIDIR_AFTER_FT_PREFIX + run] = eval_metrics_path(results_dir, run, "full_bidir")
        if finetune:
            paths[FINETUNE_PREFIX + run] = finetune_dir(results_dir, run) / SUMMARY_FILE
    return paths


SWEEP_KEY = "seed_{seed}__{key}"  # a seed sweep's input key: one seed's condition key


def sweep_study_paths(dirs_by_seed: Mapping[int, str | Path], runs: Iterable[str] = ()) -> dict[str, Path]:
    """A seed sweep's report inputs: every seed's Stage 1, 2 and 4 and side-effect evaluations, keyed by seed.

    ``dirs_by_seed``: seed -> the results directory of that seed's study.
    """
    return {
        SWEEP_KEY.format(seed=seed, key=key): path
        for seed, results_dir in dirs_by_seed.items()
        for key, path in study_paths(results_dir, runs, full_bidir=False, finetune=False).items()
    }


REPORT_TABLES = ("stages", "per_task")  # need only the base model's evaluations
RUN_TABLES = ("derived", "stage5")  # need fine-tunes
RUN_FIGURES = ("recovery_ratio", "eval_loss")
SWEEP_REPORT = "seed_sweep"  # a seed sweep's table and figure
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("pdf", "png")


def report_files(results_dir: str | Path, with_runs: bool, seed_sweep: bool = False) -> dict[str, list[Path]]:
    """The report's outputs: figures in the results directory, tables under ``tables/``, and RESULTS.md."""
    results_dir = Path(results_dir)
    tables = REPORT_TABLES + (RUN_TABLES if with_runs else ()) + ((SWEEP_REPORT,) if seed_sweep else ())
    figures = (RUN_FIGURES if with_runs else ()) + ((SWEEP_REPORT,) if seed_sweep else ())
    return {
        "tables": [results_dir / "tables" / f"{name}.{fmt}" for name in tables for fmt in TABLE_FORMATS],
        "figures": [results_dir / f"{name}.{fmt}" for name in figures for fmt in FIGURE_FORMATS],
        "page": [results_dir / "RESULTS.md"],
    }


# ---------------------------------------------------------------- fine-tune settings chosen on the dev split
TUNING_BASE_KEY = "base__{mask}"  # the tuning report's input key of the base model's dev evaluation
TUNING_TRIAL_KEY = "{trial}__{run}__{mask}"  # ... and of a grid point's fine-tune's
TUNING_MASKS = ("causal", "prefill_bidir")
TUNING_TABLE = "finetune_grid"


def tuning_dir(results_dir: str | Path) -> Path:
    """Where `snakemake tune_finetune` puts its grid's fine-tunes, dev evaluations and choice."""
    return Path(results_dir) / "tuning"


def tuning_base_eval_dir(results_dir: str | Path, mask: str) -> Path:
    return tuning_dir(results_dir) / "base" / mask


def tuning_finetune_dir(results_dir: str | Path, trial: str, run: str) -> Path:
    return tuning_dir(results_dir) / trial / run


def tuning_eval_dir(results_dir: str | Path, trial: str, run: str, mask: str) -> Path:
    return tuning_finetune_dir(results_dir, trial, run) / "dev_eval" / mask


def tuning_paths(results_dir: str | Path, trials: Iterable[str], runs: Iterable[str]) -> dict[str, Path]:
    """The tuning report's input key -> dev evaluation: the base model's and every grid point's fine-tunes'."""
    paths = {TUNING_BASE_KEY.format(mask=mask): tuning_base_eval_dir(results_dir, mask) / METRICS_FILE for mask in TUNING_MASKS}
    for trial in trials:
        for run in runs:
            for mask in TUNING_MASKS:
                key = TUNING_TRIAL_KEY.format(trial=trial, run=run, mask=mask)
                paths[key] = tuning_eval_dir(results_dir, trial, run, mask) / METRICS_FILE
    return paths


def tuning_files(results_dir: str | Path) -> dict[str, list[Path]]:
    """The tuning report's outputs: the grid's table and the chosen settings."""
    directory = tuning_dir(results_dir)
    return {
        "tables": [directory / f"{TUNING_TABLE}.{fmt}" for fmt in TABLE_FORMATS],
        "choice": [directory / "finetune_choice.json"],
    }


# ---------------------------------------------------------------- the latent-bridge study
def bridge_world_dir(results_dir: str | Path) -> Path:
    """The tiny world's bridge tasks and the bridge's own two LMs with their tokenizers."""
    return Path(results_dir) / "world" / "bridge"


def embedded_model_dir(results_dir: str | Path, name: str) -> Path:
    """Where the tiny world's model ``base_model``, ``bridge_model`` or ``bridge_source_model`` is built."""
    world = Path(results_dir) / "world"
    return world / "base_model" if name == "base_model" else bridge_world_dir(results_dir) / name


def bridge_baseline_dir(results_dir: str | Path, model: str, dataset: str) -> Path:
    """Source-alone / target-alone answers of ``model`` on ``dataset``'s eval set."""
    return Path(results_dir) / "bridge" / "baselines" / model / dataset


def bridge_run_dir(results_dir: str | Path, run: str) -> Path:
    return Path(results_dir) / "bridge" / "runs" / run


BRIDGE_CACHE_INDEX = "index.json"  # a frozen-output cache's index, written last (ablation.bridge.frozen_cache)


def bridge_cache_index(results_dir: str | Path, kind: str, key_name: str) -> Path:
    """``kind``: ``source_states`` or ``kl_baselines``; ``key_name`` names the cache's key."""
    return Path(results_dir) / "bridge" / kind / key_name / BRIDGE_CACHE_INDEX


def bridge_inference_dir(results_dir: str | Path, run: str) -> Path:
    """Seed 004's Ablation 4 for ``run``: the inference benchmark's samples.jsonl and summary.json."""
    return Path(results_dir) / "bridge" / "inference" / run


def bridge_legacy_dir(results_dir: str | Path, name: str) -> Path:
    """A preserved run of the original code, imported into the run format (``ablation.bridge.run_format``)."""
    return Path(results_dir) / "bridge" / "legacy" / name


BRIDGE_RUN_PREFIX = "run_"  # the bridge report's input key of a run's summary.json (trained, reused or legacy)
BRIDGE_INFERENCE_PREFIX = "inference_"  # ... and of a run's inference benchmark summary.json
BRIDGE_TABLES = ("bridge_runs", "bridge_expected", "bridge_inference", "bridge_claims", "bridge_parity")
BRIDGE_ABLATION_TABLE = "bridge_ablation_{name}"
BRIDGE_FIGURES = ("bridge_accuracy", "bridge_compression", "bridge_inference")


def bridge_report_paths(
    results_dir: str | Path, trained_by: dict[str, str], legacy: Iterable[str], benchmarked: Iterable[str]
) -> dict[str, Path]:
    """The bridge report's input key -> file: each run's summary (a reused run's is the trained run's) and benchmarks."""
    paths = {BRIDGE_RUN_PREFIX + run: bridge_run_dir(results_dir, trained) / "summary.json" for run, trained in trained_by.items()}
    paths.update({BRIDGE_RUN_PREFIX + name: bridge_legacy_dir(results_dir, name) / "summary.json" for name in legacy})
    paths.update({BRIDGE_INFERENCE_PREFIX + run: bridge_inference_dir(results_dir, run) / "summary.json" for run in benchmarked})
    return paths


def bridge_report_files(results_dir: str | Path, ablations: Iterable[str]) -> dict[str, list[Path]]:
    """The bridge report's outputs under ``<results>/bridge/``: tables/, figures/ and RESULTS.md."""
    report_dir = Path(results_dir) / "bridge"
    tables = BRIDGE_TABLES + tuple(BRIDGE_ABLATION_TABLE.format(name=name) for name in ablations)
    return {
        "tables": [report_dir / "tables" / f"{name}.{fmt}" for name in tables for fmt in TABLE_FORMATS],
        "figures": [report_dir / "figures" / f"{name}.{fmt}" for name in BRIDGE_FIGURES for fmt in FIGURE_FORMATS],
        "page": [report_dir / "RESULTS.md"],
    }
