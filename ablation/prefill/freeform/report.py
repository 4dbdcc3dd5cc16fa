"""The free-form report: a table of every metric per configuration and task with its 95% interval,
a figure of the headline metric, and a results page with side-by-side example generations."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablation.prefill.freeform.metrics import JUDGE_METRIC
from ablation.io import atomic_write_text, read_jsonl
from ablation.provenance import check_one_library_code
from ablation.prefill.report.tables import LABEL_COLUMNS
from ablation.writers import TableStyle, markdown_table, save_figure, write_table

log = logging.getLogger(__name__)

STYLE = TableStyle(LABEL_COLUMNS | {"mask", "metric", "95% CI"}, {"value": ".1f"})
SNIPPET = 300  # characters of a prompt or response shown on the page
JUDGE_LABEL = "judge (1–5)"


def configuration_label(model: str, mask: str) -> str:
    return f"{model} · {mask}"


def scores_table(scores: dict) -> pd.DataFrame:
    """One row per (configuration, task, metric): value, interval, n and empty responses."""
    rows = []
    for row in scores["rows"]:
        interval = row["ci95"]
        digits = 2 if row["metric"] == JUDGE_METRIC else 1
        table_row = {
            "model": row["model"],
            "mask": row["mask"],
            "task": row["task"],
            "metric": JUDGE_LABEL if row["metric"] == JUDGE_METRIC else row["metric"],
            "value": row["value"] if row["value"] is not None else np.nan,
            "95% CI": f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else "–",
            "n": row["n"],
            "empty": row["empty_responses"],
        }
        if scores.get("judged"):
            table_row["judge failures"] = row.get("judge_failures")
        rows.append(table_row)
    table = pd.DataFrame(rows)
    counts = [column for column in ("empty", "judge failures") if column in table]
    return table.astype({column: "Int64" for column in counts})  # counts, blank on the rows they do not apply to


def headline_rows(scores: dict) -> list[dict]:
    """Each (configuration, task)'s headline metric (the task's first metric) and the judge's score."""
    first_metric: dict[tuple, str] = {}
    for row in scores["rows"]:
        first_metric.setdefault((row["model"], row["mask"], row["task"]), row["metric"])
    return [
        row
        for row in scores["rows"]
        if row["metric"] in (JUDGE_METRIC, first_metric[(row["model"], row["mask"], row["task"])]) and row["value"] is not None
    ]


def scores_figure(scores: dict) -> Figure:
    """Grouped bars: one panel per (task, metric), one bar per configuration, 95% intervals as error bars."""
    rows = headline_rows(scores)
    panels = sorted({(row["task"], row["metric"]) for row in rows})
    configurations = [tuple(configuration) for configuration in scores["configurations"]]
    figure = Figure(figsize=(len(panels) * max(2.4, 1.2 + 0.45 * len(configurations)), 3.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colours = [f"C{index}" for index in range(len(configurations))]
    for axis, (task, metric) in zip(axes, panels):
        by_configuration = {(row["model"], row["mask"]): row for row in rows if (row["task"], row["metric"]) == (task, metric)}
        values = [by_configuration[key]["value"] if key in by_configuration else np.nan for key in configurations]
        errors = np.array(
            [
                [value - by_configuration[key]["ci95"][0], by_configuration[key]["ci95"][1] - value]
                if key in by_configuration
                else [0.0, 0.0]
                for key, value in zip(configurations, values)
            ]
        ).T  # [2, configurations]
        positions = np.arange(len(configurations))
        axis.bar(positions, values, yerr=errors, color=colours, edgecolor="black", linewidth=0.6, capsize=3)
        axis.set_xticks(positions, [configuration_label(*key) for key in configurations], rotation=30, ha="right", fontsize=7)
        if metric == JUDGE_METRIC:
            axis.set_title(f"{task}\n{JUDGE_LABEL}", fontsize=9)
            axis.set_ylim(0, 5)
        else:
            axis.set_title(f"{task}\n{metric} (0–100)", fontsize=9)
            axis.set_ylim(0, 100)
    axes[0].set_ylabel("score")
    return figure


def _snippet(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= SNIPPET else text[:SNIPPET] + " …"


def examples_section(generations: dict[tuple[str, str], list[dict]], examples_per_task: int) -> list[str]:
    """The first items of each task, every configuration's response side by side with the reference."""
    configurations = list(generations)
    first = generations[configurations[0]]
    by_configuration = {key: {row["id"]: row for row in rows} for key, rows in generations.items()}
    lines = []
    for task in sorted({row["task"] for row in first}):
        lines += [f"### {task}", ""]
        for row in [row for row in first if row["task"] == task][:examples_per_task]:
            lines += [f"**{row['id']}** — prompt: {_snippet(row['prompt'])}", "", "| configuration | response |", "|---|---|"]
            lines.append(f"| reference | {_snippet(row['reference'])} |")
            for key in configurations:
                response = by_configuration[key][row["id"]]["response"]
                lines.append(f"| {configuration_label(*key)} | {_snippet(response) if response else '*(empty)*'} |")
            lines.append("")
    return lines


def results_page(scores: dict, generations: dict[tuple[str, str], list[dict]], examples_per_task: int, experiment: str) -> str:
    table = scores_table(scores)
    lines = [
        f"# Free-form generation — {experiment}",
        "",
        "Every configuration answers the same prompts (one masked prefill, then greedy or sampled decoding "
        "against the KV cache). Metrics are on a 0–100 scale with percentile-bootstrap 95% intervals over items; "
        "*empty* counts empty responses, which score 0."
        + (
            " The judge's score is the mean over the items it scored (1–5); *judge failures* are items it could not "
            "score after its retries, left out of the mean rather than counted as 0."
            if scores.get("judged")
            else ""
        ),
        "",
        markdown_table(table, STYLE),
        "",
        "![free-form scores](freeform.png)",
        "",
        "## Example generations",
        "",
        *examples_section(generations, examples_per_task),
        "## Provenance",
        "",
        *provenance_lines(generations),
        "",
    ]
    return "\n".join(lines)


def _stamp(rows: list[dict]) -> dict:
    return rows[0]["provenance"]


def provenance_lines(generations: dict[tuple[str, str], list[dict]]) -> list[str]:
    """Code commit, config hash and libraries: once when every configuration's generations share them,
    else each configuration's."""
    def described(stamp: dict) -> str:
        libraries = ", ".join(f"{name} {version}" for name, version in stamp["library_versions"].items())
        code = (stamp.get("library_code_sha256") or "unrecorded")[:12]
        return f"code commit `{stamp['code_commit']}` (library code `{code}`), config sha256 `{stamp['config_sha256']}`, libraries {libraries}"

    each = {configuration_label(*key): described(_stamp(rows)) for key, rows in generations.items()}
    if len(set(each.values())) == 1:
        return [f"{next(iter(each.values()))} (all generations)."]
    return ["**The generations differ in provenance:**", "", *(f"- {label}: {text}." for label, text in each.items())]


def write_report(
    scores: dict,
    generation_files: dict[tuple[str, str], str | Path],
    *,
    table_stem: str | Path,
    figure_stem: str | Path,
    page: str | Path,
    examples_per_task: int,
    experiment: str,
    allow_mixed_code: bool = False,
) -> None:
    """The free-form tables, figure and page; a ValueError, with nothing written, when the generations were
    made by different library code, unless ``allow_mixed_code`` (config ``report.allow_mixed_code``)."""
    generations = {key: read_jsonl(path) for key, path in generation_files.items()}
    stamps = {configuration_label(*key): _stamp(rows) for key, rows in generations.items()}
    check_one_library_code(stamps, allow_mixed=allow_mixed_code, what="free-form generations")
    write_table(scores_table(scores), table_stem, STYLE)
    save_figure(scores_figure(scores), figure_stem)
    atomic_write_text(page, results_page(scores, generations, examples_per_task, experiment))
    log.info("wrote the free-form report to %s", page)
