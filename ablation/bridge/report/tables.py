"""The bridge study's tables, written as CSV, Markdown and LaTeX by the prefill report's writers.

- ``bridge_runs``: one row per role of seed 004's plan (then any run without one): peak bridged
  accuracy and its step, final, degradation, source alone, target alone, gap to target, the
  target with the question's text in the soft slot, the majority-answer floor, the final
  translator's soft-token spread between questions, the source's legibility (all tokens, numbers)
  at the layer the translator read, K, compression, stop reason, wall time; a reused run says
  whose numbers it shows.
- ``bridge_ablation_<name>``: each ``bridge.report.ablations`` entry, its roles side by side and
  each compared with the first on the same questions (paired 95% interval of the final accuracy).
- ``bridge_inference``: the inference benchmark's five baselines with intervals.
- ``bridge_expected``: seed 004's expected results beside the observed ones.
- ``bridge_claims``: the claims matrix with each verdict's tests and numbers.

A role with no run, or a run without files, stays in its table as "not yet run".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ablation.bridge.parity import DIFFERS, NO_COUNTERPART, SAME, parity_rows
from ablation.bridge.report.claims import Claim
from ablation.bridge.report.study import NOT_YET_RUN, BridgeRun, BridgeStudy, paired_difference
from ablation.layout import BRIDGE_ABLATION_TABLE
from ablation.writers import TableStyle, duration, write_table

BASELINES = ("source_alone", "target_alone", "latent", "token_budget", "cascade")
TOLERANCE = 0.0005  # half a unit of the seed's three printed decimals
BRIDGE_STYLE = TableStyle(
    labels=frozenset({
        "role", "run", "origin", "dataset", "K", "stop", "wall time", "note", "ablation", "claim", "evidence",
        "verdict", "tests", "baseline", "status", "metric", "expected", "check", "basis", "95% CI",
        "accuracy 95% CI", "95% CI (latent − this)",
    }),
    formats={
        "peak step": "d", "compression": ".2f", "gap to target": "+.3f", "Δ final": "+.3f", "latent − this": "+.3f",
        "McNemar p": ".3g", "KV cache MB": ".1f", "batch peak memory MB": ".0f", "input tokens": ".1f", "output tokens": ".1f",
        "samples/s": ".2f", "batch latency s": ".3f",
    },
    number_format=".3f",
)  # fmt: skip


def interval_text(ci, spec: str = ".3f") -> str:
    low, high = ci
    return f"[{low:{spec}}, {high:{spec}}]"


def soft_tokens_label(run: BridgeRun) -> str:
    """K, and the setting it was resolved from where that was not K itself: "2048 (soft_tokens -1)"."""
    k = "?" if run.soft_tokens is None else str(run.soft_tokens)
    setting = run.soft_tokens_setting
    return k if setting is None or setting > 0 else f"{k} (soft_tokens {setting})"


def stop_label(run: BridgeRun) -> str:
    """``early stop at 1750``, ``max steps at 2000`` or ``unknown``, from the summary's stop reason."""
    kind = str(run.summary.get("stop_reason") or "unknown").split(":")[0].replace("_", " ")
    step = run.last_trained_step
    return kind if kind == "unknown" or step is None else f"{kind} at {step}"


def _notes(run: BridgeRun, reuses: str | None, prompt_mode_forced: bool) -> str:
    notes = [] if reuses is None else [f"reuses {reuses}"]
    if prompt_mode_forced:
        notes.append("prompt mode forced to soft_only")
    if run.unscorable:
        notes.append("not scorable: HotpotQA under the original's '#### n' rule, accuracies measure nothing")
    log_check = run.summary.get("log_check")
    if log_check and not log_check["agrees"]:
        notes.append(f"log disagrees on {len(log_check['disagreements'])} value(s)")
    return "; ".join(notes)


def _legibility(legibility: dict | None) -> dict:
    """The source's legibility at the layer the run read (None for a run recorded without it)."""
    legibility = legibility or {}
    return {"source legibility": legibility.get("tokens"), "source number legibility": legibility.get("number_tokens")}


def _numbers(run: BridgeRun | None) -> dict:
    """The columns every run table shares; empty cells for a run not yet run."""
    s = {} if run is None else run.summary
    return {
        "dataset": None if run is None else run.dataset,
        "K": None if run is None else soft_tokens_label(run),
        "peak": s.get("peak_bridged_acc"),
        "final": s.get("final_bridged_acc"),
        "degradation": s.get("degradation"),
        "source alone": s.get("source_acc"),
        "target alone": s.get("target_acc"),
    }


def _rows_by_role(study: BridgeStudy) -> list[tuple[str | None, str | None]]:
    """(role, run) for every role, then (None, run) for every run without a role."""
    played = set(study.roles.values())
    return [*study.roles.items(), *((None, name) for name in study.runs if name not in played)]


def runs_table(study: BridgeStudy) -> pd.DataFrame:
    """One row per role, then per run without a role; the first row showing a trained run's numbers owns them."""
    owner: dict[str, str] = {}  # trained run -> the row label that showed its numbers first
    rows = []
    for role, name in _rows_by_role(study):
        run = None if name is None else study.runs.get(name)
        row = {"role": role, "run": name, "origin": NOT_YET_RUN if run is None else run.origin}
        if run is None:
            rows.append({**row, **_numbers(None)})
            continue
        label = role or name
        holder = owner.setdefault(run.trained_run, label if run.trained_run == run.name else run.trained_run)
        reuses = holder if holder != label else None
        s = run.summary
        rows.append({
            **row, **_numbers(run),
            "peak step": s["peak_step"],
            "gap to target": s["final_bridged_acc"] - s["target_acc"],
            "question in soft slot": s.get("target_soft_slot_acc"),
            "majority floor": s.get("majority_acc"),
            "soft-token spread": s.get("final_soft_token_spread"),
            **_legibility(s.get("source_legibility")),
            "compression": run.compression,
            "stop": stop_label(run),
            "wall time": duration(s.get("wall_seconds")),
            "note": _notes(run, reuses, study.prompt_mode_forced(run)),
        })  # fmt: skip
    columns = ["role", "run", "origin", "dataset", "K", "compression", "peak", "peak step", "final", "degradation",
               "source alone", "target alone", "gap to target", "question in soft slot", "majority floor",
               "soft-token spread", "source legibility", "source number legibility", "stop", "wall time",
               "note"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).astype({"peak step": "Int64"})


def ablation_table(study: BridgeStudy, ablation: Mapping) -> pd.DataFrame:
    """The ablation's roles; every role after the first compared with it on the questions both answered."""
    reference_role, *others = ablation["roles"]
    reference = study.run_of(reference_role)
    rows = []
    for role in ablation["roles"]:
        run = study.run_of(role)
        row = {"role": role, "run": study.roles.get(role), "origin": NOT_YET_RUN if run is None else run.origin, **_numbers(run)}
        if role == reference_role:
            row["95% CI"] = "reference"
        elif run is None or reference is None:
            row["95% CI"] = f"{reference_role if reference is None else role} {NOT_YET_RUN}"
        elif run.trained_run == reference.trained_run:  # equal settings: one translator, no second measurement
            row["95% CI"] = f"the same run as {reference_role} ({run.trained_run}): nothing to compare"
        elif (difference := paired_difference(run.scores(run.final_step), reference.scores(reference.final_step))) is None:
            row["95% CI"] = "no questions in common"
        else:
            row.update({"Δ final": difference["mean"], "95% CI": interval_text(difference["ci95"], "+.3f"), "questions": difference["n"]})
        rows.append(row)
    columns = ["role", "run", "origin", "dataset", "K", "peak", "final", "degradation", "source alone", "target alone",
               "Δ final", "95% CI", "questions"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).astype({"questions": "Int64"})


def _mean(entry: Mapping | None, key: str):
    value = (entry or {}).get(key)
    return value["mean"] if isinstance(value, Mapping) else value


def inference_table(study: BridgeStudy) -> pd.DataFrame:
    """Each benchmarked run x baseline: quality, latency, memory and lengths, and latent's paired difference."""
    rows = []
    benchmarks = study.inference.items() or [(None, None)]
    for run, summary in benchmarks:
        for baseline in BASELINES:
            entry = None if summary is None else summary["baselines"].get(baseline)
            row = {"run": run, "baseline": baseline}
            if entry is None:
                rows.append({**row, "status": NOT_YET_RUN if summary is None else "not benchmarked"})
                continue
            comparison = summary.get("comparisons", {}).get(f"latent_vs_{baseline}", {})
            difference = comparison.get("accuracy_difference")
            rows.append({
                **row, "status": "measured", "n": entry["n"],
                "accuracy": entry["accuracy"]["mean"], "accuracy 95% CI": interval_text(entry["accuracy"]["ci95"]),
                "F1": _mean(entry, "f1"), "batch latency s": _mean(entry, "latency_s"), "KV cache MB": _mean(entry, "kv_cache_mb"),
                "batch peak memory MB": _mean(entry, "peak_memory_mb"), "input tokens": _mean(entry, "input_tokens"),
                "output tokens": _mean(entry, "output_tokens"), "samples/s": entry.get("throughput_samples_per_s"),
                "latent − this": None if difference is None else difference["mean"],
                "95% CI (latent − this)": None if difference is None else interval_text(difference["ci95"], "+.3f"),
                "McNemar p": comparison.get("mcnemar_p"),
            })  # fmt: skip
    columns = ["run", "baseline", "status", "n", "accuracy", "accuracy 95% CI", "F1", "batch latency s", "KV cache MB",
               "batch peak memory MB", "input tokens", "output tokens", "samples/s", "latent − this", "95% CI (latent − this)",
               "McNemar p"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).astype({"n": "Int64"})


def expected_text(expected, spec: str = ".3f") -> str:
    """A seed expectation as written: a point, a range, a bound, or TBD."""
    if expected is None:
        return "TBD"
    if not isinstance(expected, Mapping):
        return f"{expected:{spec}}"
    low, high = expected["min"], expected["max"]
    if low is not None and high is not None:
        return f"{low:{spec}}" if low == high else f"{low:{spec}}–{high:{spec}}"
    if high is not None:
        return f"< {high:{spec}}"
    return "TBD" if low is None else f"> {low:{spec}}"


def expectation_check(expected, observed: float | None) -> str:
    """as expected / below / above, within half a unit of the seed's printed decimals."""
    if expected is None:
        return "no expectation"
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return "not measured"
    low, high = (expected["min"], expected["max"]) if isinstance(expected, Mapping) else (expected, expected)
    if low is not None and observed < low - TOLERANCE:
        return "below"
    if high is not None and observed > high + TOLERANCE:
        return "above"
    return "as expected"


def expected_table(study: BridgeStudy) -> pd.DataFrame:
    """Seed 004's expected peak, final, degradation and compression per role, beside what was observed."""
    rows = []
    for role, expected in study.report["expected"].items():
        run = study.run_of(role)
        observed = {} if run is None else {
            "peak": run.summary["peak_bridged_acc"], "final": run.summary["final_bridged_acc"],
            "degradation": run.summary["degradation"], "compression": run.compression,
        }  # fmt: skip
        for metric in ("peak", "final", "degradation", "compression"):
            spec = ".1f" if metric == "compression" else ".3f"
            rows.append({
                "role": role, "run": study.roles.get(role), "metric": metric,
                "expected": expected_text(expected[metric], spec) + ("×" if metric == "compression" and expected[metric] else ""),
                "observed": observed.get(metric),
                "check": NOT_YET_RUN if run is None else expectation_check(expected[metric], observed[metric]),
                "basis": expected["basis"],
            })  # fmt: skip
    return pd.DataFrame(rows, columns=["role", "run", "metric", "expected", "observed", "check", "basis"])


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    """Claim, evidence, ablation, verdict, and every test behind the verdict with its numbers."""
    rows = [
        {
            "claim": claim.claim, "evidence": claim.evidence, "ablation": claim.ablation, "verdict": claim.verdict,
            "tests": "; ".join(f"{part.test}: {part.outcome} ({part.numbers})" for part in claim.parts),
        }  # fmt: skip
        for claim in claims
    ]
    return pd.DataFrame(rows, columns=["claim", "evidence", "ablation", "verdict", "tests"])


def parity_table(study: BridgeStudy) -> pd.DataFrame:
    """Each preserved run beside the run that re-runs it (``reproduced_by``): how many of its log's config
    keys our effective settings match, and both runs' accuracies with the re-run's paired difference."""
    rows = []
    for legacy_name, rerun_name in study.reproductions.items():
        legacy, rerun = study.runs.get(legacy_name), study.runs.get(rerun_name)
        row = {"preserved run": legacy_name, "re-run": rerun_name}
        if legacy is None or rerun is None:
            row["95% CI"] = f"{legacy_name if legacy is None else rerun_name} {NOT_YET_RUN}"
            rows.append(row)
            continue
        verdicts = parity_rows(legacy.summary["settings"], rerun.summary["settings"], study.parity_config)
        counts = Counter(verdict["verdict"] for verdict in verdicts)
        row.update({"same": counts[SAME], "differs": counts[DIFFERS], "no counterpart": counts[NO_COUNTERPART],
                    "differing keys": ", ".join(v["key"] for v in verdicts if v["verdict"] == DIFFERS) or "none",
                    "preserved peak": legacy.summary["peak_bridged_acc"], "preserved final": legacy.summary["final_bridged_acc"],
                    "re-run peak": rerun.summary["peak_bridged_acc"], "re-run final": rerun.summary["final_bridged_acc"]})  # fmt: skip
        difference = paired_difference(rerun.scores(rerun.final_step), legacy.scores(legacy.final_step))
        if difference is None:
            row["95% CI"] = "no questions in common"
        else:
            row.update({"Δ final": difference["mean"], "95% CI": interval_text(difference["ci95"], "+.3f"), "questions": difference["n"]})
        rows.append(row)
    columns = ["preserved run", "re-run", "same", "differs", "no counterpart", "differing keys", "preserved peak",
               "preserved final", "re-run peak", "re-run final", "Δ final", "95% CI", "questions"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).astype({"same": "Int64", "differs": "Int64", "no counterpart": "Int64", "questions": "Int64"})


def bridge_tables(study: BridgeStudy, claims: list[Claim]) -> dict[str, pd.DataFrame]:
    """Every table by file stem, in the order ``ablation.layout.bridge_report_files`` lists them."""
    tables = {
        "bridge_runs": runs_table(study),
        "bridge_expected": expected_table(study),
        "bridge_inference": inference_table(study),
        "bridge_claims": claims_table(claims),
        "bridge_parity": parity_table(study),
    }
    for ablation in study.report["ablations"]:
        tables[BRIDGE_ABLATION_TABLE.format(name=ablation["name"])] = ablation_table(study, ablation)
    return tables


def write_bridge_tables(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    return [path for name, table in tables.items() for path in write_table(table, Path(out_dir) / name, BRIDGE_STYLE)]
