"""The bridge study's results page (``results/bridge/RESULTS.md``): runs, ablations, claims,
inference benchmark, expected vs observed, figures and provenance, from the same tables the
report writes, so the page and the tables cannot disagree. The prefill study's RESULTS.md links
to it; each page is its own rule's output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ablation.bridge.report.claims import Claim
from ablation.bridge.report.study import NOT_YET_RUN, BridgeRun, BridgeStudy
from ablation.bridge.report.tables import BRIDGE_STYLE
from ablation.io import atomic_write_text
from ablation.layout import BRIDGE_ABLATION_TABLE
from ablation.writers import artifacts_section, figures_section, markdown_table


def _table(table: pd.DataFrame) -> str:
    return markdown_table(table, BRIDGE_STYLE)


def _run_lines(study: BridgeStudy) -> str:
    """What each role's run is; roles without a run are listed as not yet run."""
    lines = []
    for role, name in study.roles.items():
        run = study.run_of(role)
        if run is None:
            lines.append(f"- `{role}`: {NOT_YET_RUN}" + ("" if name is None else f" (run `{name}`)"))
            continue
        description = study.descriptions.get(name) or ""
        lines.append(f"- `{role}`: `{name}` ({run.origin}, {run.dataset})" + (f": {description}" if description else ""))
    return "\n".join(lines)


def _claims_section(claims: list[Claim]) -> str:
    header = ["| claim | ablation | verdict |", "|---|---|---|"]
    rows = [f"| {claim.claim} | {claim.ablation} | **{claim.verdict}** |" for claim in claims]
    details = []
    for claim in claims:
        details.append(f"**{claim.claim}** ({claim.evidence}): **{claim.verdict}**")
        details += [f"- {part.outcome}: {part.test}; {part.numbers}" for part in claim.parts]
        details.append("")
    rule = ("A test passes when the whole 95% paired interval lies on the claimed side of its threshold, fails when it "
            "lies on the other side, and is inconclusive when it straddles it. Verdict: supported (every test passes), "
            "partial (some pass), not supported (one fails, or all are inconclusive), not yet run (nothing failed, "
            "something missing).")  # fmt: skip
    return "\n\n".join(["\n".join(header + rows), rule, "\n".join(details).rstrip()])


def _provenance_line(run: BridgeRun) -> str:
    s = run.summary
    stamp = s.get("provenance") or {}
    if run.origin == "legacy":
        check = s.get("log_check") or {}
        agreement = "agrees" if check.get("agrees") else f"disagrees on {len(check.get('disagreements', []))} value(s)"
        text = (f"- `{run.trained_run}` (legacy): imported from `{stamp.get('source_dir', '?')}`, experiment "
                f"`{stamp.get('experiment', '?')}`, train.log sha256 `{str(stamp.get('train_log_sha256', '?'))[:12]}`; "
                f"accuracies recomputed from the samples, the log {agreement}")  # fmt: skip
    else:
        source = (stamp.get("source_model") or {}).get("id", "?")
        target = (stamp.get("model") or {}).get("id", "?")
        text = (f"- `{run.trained_run}` (trained): `{source}` → `{target}`, code `{stamp.get('code_commit', '?')}`, "
                f"config sha256 `{str(stamp.get('config_sha256', '?'))[:12]}`, seed {stamp.get('seed', '?')}")  # fmt: skip
    notes = s.get("notes") or []
    return text + ("".join(f"; {note}" for note in notes)) + "."


def _inference_provenance(study: BridgeStudy) -> list[str]:
    lines = []
    for run, summary in study.inference.items():
        stamp = summary.get("provenance") or {}
        lines.append(f"- inference benchmark of `{run}` (translator of `{summary.get('trained_run', run)}`): "
                     f"code `{stamp.get('code_commit', '?')}`, config sha256 `{str(stamp.get('config_sha256', '?'))[:12]}`.")  # fmt: skip
    return lines


def bridge_results_markdown(
    study: BridgeStudy,
    tables: Mapping[str, pd.DataFrame],
    claims: list[Claim],
    base_dir: str | Path,
    *,
    table_files: Iterable[Path] = (),
    figure_files: Iterable[Path] = (),
) -> str:
    base_dir = Path(base_dir)
    figure_files, table_files = list(map(Path, figure_files)), list(map(Path, table_files))
    title = f"# Results: {study.experiment}, latent bridge" if study.experiment else "# Results: latent bridge"
    ablations = []
    for ablation in study.report["ablations"]:
        ablations += [f"### {ablation['title'] or ablation['name']}",
                      _table(tables[BRIDGE_ABLATION_TABLE.format(name=ablation["name"])])]  # fmt: skip
    inference = (_table(tables["bridge_inference"]) if study.inference
                 else f"Inference benchmark (seed 004's Ablation 4): {NOT_YET_RUN}.")  # fmt: skip
    provenance = [_provenance_line(run) for run in study.shown_runs()] + _inference_provenance(study)
    sections = [
        title,
        "_Generated by `ablation.bridge.report` from the run and benchmark summaries listed under Artifacts; rebuild it "
        "with the workflow instead of editing it. Accuracies are recomputed from the per-question samples; intervals "
        "are 95% paired bootstrap intervals over questions._",
        "## Runs",
        _run_lines(study),
        "Two references frame each bridged accuracy: _question in soft slot_ is the target answering with the "
        "question's own text where the soft tokens go (what a word-for-word translator would give it), and "
        "_majority floor_ is always answering the training split's most common answer (a translator that ignores "
        "its source gives one constant answer, and scores about this at best). _Soft-token spread_ says whether the "
        "final translator's output depends on the question at all: how much its soft tokens vary between the eval "
        "questions, relative to their size (0: every question gets the same tokens; about 1: unrelated tokens). "
        "_Source legibility_ says what the translator had to read: the share of the eval prompts' tokens (and of "
        "their number tokens) whose ids a linear readout recovers from the source layer it read; a source whose "
        "layer has lost the question's numbers cannot pass them on, whatever the translator.",
        _table(tables["bridge_runs"]),
        "## Ablations",
        "Each role is compared with the table's first on the questions both answered (Δ final: paired difference of "
        "the final bridged accuracy).",
        *ablations,
        "## Claims",
        _claims_section(claims),
        "## Inference benchmark",
        inference,
        "## Expected vs observed (seed 004)",
        _table(tables["bridge_expected"]),
    ]
    if study.reproductions:
        sections += ["## Re-runs of the preserved runs",
                     "Each preserved run beside the run that re-runs it with the original's settings: its train.log's config "
                     "keys against the re-run's effective settings, and Δ final = re-run minus preserved on the questions both "
                     "answered. A preserved run's final read the original's last weights.",
                     _table(tables["bridge_parity"])]  # fmt: skip
    if figure_files:
        sections += ["## Figures", figures_section(figure_files, base_dir)]
    sections += ["## Provenance", "\n".join(provenance) or "No run has results yet."]
    sections += ["## Artifacts", artifacts_section(study.sources, base_dir, figure_files, table_files)]
    return "\n\n".join(sections) + "\n"


def write_bridge_results_page(study, tables, claims, out_path: str | Path, *, table_files=(), figure_files=()) -> Path:
    out_path = Path(out_path)
    text = bridge_results_markdown(study, tables, claims, out_path.parent, table_files=table_files, figure_files=figure_files)
    return atomic_write_text(out_path, text)
