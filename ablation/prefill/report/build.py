"""The whole report in one call: tables, figures and RESULTS.md from the study's files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ablation.layout import REPORT_TABLES, SWEEP_REPORT
from ablation.prefill.report.figures import write_figures
from ablation.prefill.report.results_page import write_results_page
from ablation.prefill.report.seed_sweep import load_sweep, split_sweep_paths, write_sweep_report
from ablation.prefill.report.study import check_one_library_code, load_study
from ablation.prefill.report.tables import TABLE_NAMES, write_tables


def build_report(
    paths: Mapping[str, str | Path],
    results_dir: str | Path,
    *,
    train_masks: Mapping[str, str],
    experiment: str,
    linked_pages: Mapping[str, str | Path] | None = None,
    allow_mixed_code: bool = False,
) -> list[Path]:
    """Write the files ``ablation.layout.report_files`` names; a study without fine-tunes gets the base-model tables only.

    Inputs keyed ``seed_<s>__<key>`` are a seed sweep's (``ablation.layout.sweep_study_paths``):
    they add the sweep's table and figure and its answer on the page.
    ``linked_pages`` (title -> path): other studies' results pages, linked from RESULTS.md.
    ``allow_mixed_code``: tabulate evaluations made by different library code together
    (``check_one_library_code``), instead of refusing.
    """
    results_dir = Path(results_dir)
    own_paths, sweep_paths = split_sweep_paths(paths)
    study = load_study(own_paths, train_masks=train_masks, experiment=experiment)
    check_one_library_code(study, allow_mixed=allow_mixed_code)
    sweep = load_sweep(sweep_paths, train_masks) if sweep_paths else None
    with_runs = bool(study.runs)
    tables = write_tables(study, results_dir / "tables", names=TABLE_NAMES if with_runs else REPORT_TABLES)
    figures = write_figures(study, results_dir) if with_runs else []
    sweep_answer = None
    if sweep is not None:
        sweep_tables, sweep_figures, sweep_answer = write_sweep_report(sweep, results_dir, SWEEP_REPORT)
        tables, figures = tables + sweep_tables, figures + sweep_figures
    page = write_results_page(
        study,
        results_dir / "RESULTS.md",
        figures=figures,
        tables=tables,
        linked_pages=linked_pages,
        seed_sweep=sweep_answer,
    )
    return [*tables, *figures, page]
