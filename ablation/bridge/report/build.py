"""The whole bridge report in one call: tables, figures and RESULTS.md from the runs' files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ablation.bridge.report.claims import evaluate_claims
from ablation.bridge.report.figures import write_bridge_figures
from ablation.bridge.report.page import write_bridge_results_page
from ablation.bridge.report.study import load_bridge_study
from ablation.bridge.report.tables import bridge_tables, write_bridge_tables
from ablation.provenance import check_one_library_code


def build_bridge_report(
    paths: Mapping[str, str | Path],
    report_dir: str | Path,
    *,
    roles: Mapping[str, str | None],
    report: Mapping,
    descriptions: Mapping[str, str] | None = None,
    experiment: str | None = None,
    reproductions: Mapping[str, str] | None = None,
    parity_config: Mapping | None = None,
    forced_prompt_modes: Mapping[str, bool] | None = None,
    allow_mixed_code: bool = False,
) -> list[Path]:
    """Write the files ``ablation.layout.bridge_report_files`` names under ``report_dir`` (``<results>/bridge``).

    Tables and claims are computed before anything is written, so a bad input leaves no table behind.
    Trained runs (and benchmarks) made by different library code are refused unless ``allow_mixed_code``.
    """
    report_dir = Path(report_dir)
    study = load_bridge_study(paths, roles=roles, report=report, descriptions=descriptions, experiment=experiment,
                              reproductions=reproductions, parity_config=parity_config, forced_prompt_modes=forced_prompt_modes)  # fmt: skip
    trained = {name: run.summary.get("provenance") for name, run in study.runs.items() if run.origin == "trained"}
    check_one_library_code(trained, allow_mixed=allow_mixed_code, what="trained runs")
    benchmarks = {run: summary.get("provenance") for run, summary in study.inference.items()}
    check_one_library_code(benchmarks, allow_mixed=allow_mixed_code, what="inference benchmarks")
    claims = evaluate_claims(study)
    tables = bridge_tables(study, claims)
    table_files = write_bridge_tables(tables, report_dir / "tables")
    figure_files = write_bridge_figures(study, report_dir / "figures")
    page = write_bridge_results_page(study, tables, claims, report_dir / "RESULTS.md", table_files=table_files, figure_files=figure_files)
    return [*table_files, *figure_files, page]
