"""Where the free-form stages write, under the results directory; free of heavy imports for the Snakefile."""

from __future__ import annotations

from pathlib import Path

from ablation.layout import FIGURE_FORMATS, TABLE_FORMATS

TABLE = "freeform"
FIGURE = "freeform"


def freeform_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "freeform"


def tasks_path(results_dir: str | Path) -> Path:
    return freeform_dir(results_dir) / "tasks.jsonl"


def generations_path(results_dir: str | Path, model: str, mask: str) -> Path:
    """``model`` is ``base`` or a fine-tune run's name."""
    return freeform_dir(results_dir) / model / mask / "generations.jsonl"


def judgments_path(results_dir: str | Path, model: str, mask: str) -> Path:
    return freeform_dir(results_dir) / model / mask / "judgments.jsonl"


def judge_cache_path(results_dir: str | Path) -> Path:
    """Every judge verdict of this results directory, by (judge model, prompt); shared by all configurations."""
    return freeform_dir(results_dir) / "judge_cache.jsonl"


def scores_path(results_dir: str | Path) -> Path:
    return freeform_dir(results_dir) / "scores.json"


def configurations(runs, masks) -> list[tuple[str, str]]:
    """The original's four configurations, generalised: the base model and every fine-tune, under each mask."""
    return [(model, mask) for model in ("base", *runs) for mask in masks]


def report_files(results_dir: str | Path) -> dict[str, list[Path]]:
    results_dir = Path(results_dir)
    return {
        "tables": [results_dir / "tables" / f"{TABLE}.{fmt}" for fmt in TABLE_FORMATS],
        "figures": [freeform_dir(results_dir) / f"{FIGURE}.{fmt}" for fmt in FIGURE_FORMATS],
        "page": [freeform_dir(results_dir) / "RESULTS.md"],
    }
