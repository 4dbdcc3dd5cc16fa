"""Reports of the prefill-mask ablation study: derived numbers, tables, figures and RESULTS.md.

A Snakemake rule loads the study from a mapping condition key -> file (see
``ablation.prefill.report.study``) and calls one writer per output kind::

    study = load_study(dict(snakemake.input.items()), train_masks=..., experiment=...)
    tables = write_tables(study, out_dir / "tables")
    figures = write_figures(study, out_dir / "figures")
    write_results_page(study, out_dir / "RESULTS.md", figures=figures, tables=tables)
"""

from ablation.prefill.report.build import build_report
from ablation.prefill.report.derived import ablation_damage, derived_by_run, derived_numbers, macro_stderr
from ablation.prefill.report.figures import (
    FIGURE_NAMES,
    eval_loss_figure,
    plot_eval_loss,
    plot_recovery_ratio,
    recovery_ratio_figure,
    write_figures,
)
from ablation.prefill.original.published import original_metrics, original_results_table, original_stage5_table
from ablation.prefill.report.results_page import results_markdown, write_results_page
from ablation.prefill.report.study import (
    FULL_BIDIR,
    STAGE1,
    STAGE2,
    Condition,
    FinetuneRun,
    Study,
    display_task,
    load_metrics,
    load_study,
    study_paths,
)
from ablation.prefill.report.tables import (
    TABLE_NAMES,
    derived_table,
    per_task_table,
    stage5_table,
    stage_table,
    write_tables,
)

__all__ = [
    "build_report",
    "FIGURE_NAMES",
    "FULL_BIDIR",
    "STAGE1",
    "STAGE2",
    "TABLE_NAMES",
    "Condition",
    "FinetuneRun",
    "Study",
    "ablation_damage",
    "derived_by_run",
    "derived_numbers",
    "derived_table",
    "display_task",
    "eval_loss_figure",
    "load_metrics",
    "load_study",
    "macro_stderr",
    "original_metrics",
    "original_results_table",
    "original_stage5_table",
    "per_task_table",
    "plot_eval_loss",
    "plot_recovery_ratio",
    "recovery_ratio_figure",
    "results_markdown",
    "stage5_table",
    "stage_table",
    "study_paths",
    "write_figures",
    "write_results_page",
    "write_tables",
]
