"""The bridge report on synthetic run and benchmark summaries: every claim's verdict passing,
failing, partial and missing; tables with their rows, "not yet run" included; figures written;
and the legacy import rule in a real Snakemake run on a small hand-made legacy directory."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablation.bridge.prompts import eval_prompt
from ablation.bridge.report import build_bridge_report, evaluate_claims, load_bridge_study
from ablation.bridge.report.tables import ablation_table, expected_table, inference_table, parity_table, runs_table
from ablation.bridge.roles import role_runs
from ablation.bridge.run_format import FINAL_STEP, SIDES, history_row, samples_filename
from ablation.config import ConfigError, validate_config
from ablation.io import CorruptFileError
from ablation.layout import BRIDGE_INFERENCE_PREFIX, BRIDGE_RUN_PREFIX, bridge_report_files
from tests.bridge.legacy_logs import write_run as write_legacy_run

QUESTIONS = 40
GSM8K_GOLDS = [str(n) for n in range(QUESTIONS)]
HOTPOT_GOLDS = [f"city {n}" for n in range(QUESTIONS)]
REPORT = validate_config({"studies": ["bridge"]})["bridge"]["report"]


def correct(count: int) -> list[bool]:
    """The first ``count`` of the questions answered right."""
    return [index < count for index in range(QUESTIONS)]


LEGACY_SHOTS = [{"question": f"Shot {n}?", "answer": f"So {n}.\n#### {n}"} for n in range(8)]


def write_run(results: Path, name: str, bridged: dict, *, source: int = 20, target: int = 30, dataset: str = "gsm8k",
              soft_tokens: int = 64, resolved_soft_tokens: int | None = None, origin: str = "trained",
              stop_reason: str = "max_steps: trained all 4 steps") -> Path:
    """A run directory in the run format: samples per evaluation (bridged correct counts by step), history, summary.
    ``resolved_soft_tokens``: the K a ``soft_tokens`` <= 0 resolved to (None: unknown, as in a log that does not say)."""
    golds = GSM8K_GOLDS if dataset == "gsm8k" else HOTPOT_GOLDS
    directory = results / name
    directory.mkdir(parents=True)
    history = []
    for step, count in bridged.items():
        counts = {"source": source, "target": target, "bridged": count}
        rows = []
        for index, gold in enumerate(golds):
            question = f"Question {index}?" if dataset == "gsm8k" else f"Which city is number {index}?"
            if origin == "legacy" and dataset == "gsm8k":  # the original's rows hold the whole 8-shot prompt
                question = eval_prompt("gsm8k", {"question": question}, LEGACY_SHOTS)
            row = {"eval_step": str(step), "index": index, "question": question, "gold_full_text": gold, "gold_extracted": gold}
            for side in SIDES:
                answer = gold if correct(counts[side])[index] else "wrong"
                row.update({f"{side}_full": answer, f"{side}_extracted": answer})
            rows.append(row)
        (directory / samples_filename(step)).write_text("".join(json.dumps(row) + "\n" for row in rows))
        history.append(history_row(step, rows, dataset))
    (directory / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    trained = [row for row in history if row["step"] != FINAL_STEP]
    peak = max(trained, key=lambda row: row["bridged_acc"])
    final = history[-1]
    summary = {
        "run": name, "study": "bridge", "origin": origin, "role": None, "dataset": dataset,
        "settings": {"soft_tokens": soft_tokens, "prompt_mode_forced": False},
        "source_acc": final["source_acc"], "target_acc": final["target_acc"],
        "peak_bridged_acc": peak["bridged_acc"], "peak_step": peak["step"], "final_bridged_acc": final["bridged_acc"],
        "degradation": peak["bridged_acc"] - final["bridged_acc"], "stop_reason": stop_reason, "wall_seconds": 12.5,
        "soft_tokens": soft_tokens, "resolved_soft_tokens": soft_tokens if soft_tokens > 0 else resolved_soft_tokens,
        "steps_evaluated": [row["step"] for row in history],
        "log_check": None if origin == "trained" else {"agrees": True, "disagreements": []},
        "provenance": {"code_commit": "abc123", "config_sha256": "f" * 64, "seed": 7}, "notes": [],
    }  # fmt: skip
    if origin == "trained":
        summary["compression"] = 150 / summary["resolved_soft_tokens"]
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory / "summary.json"


def interval(mean: float, low: float, high: float) -> dict:
    return {"mean": mean, "ci95": [low, high]}


def benchmark_summary(*, latent_gain: float = 0.1, kv_saved: float = 40.0) -> dict:
    """An inference benchmark summary of the shape ablation.bridge.benchmark writes."""
    accuracy = {"source_alone": 0.5, "target_alone": 0.6, "latent": 0.6 + latent_gain, "token_budget": 0.3, "cascade": 0.55}
    baselines = {
        name: {
            "n": 200, "accuracy": interval(value, value - 0.05, value + 0.05), "latency_s": interval(1.0, 0.9, 1.1),
            "kv_cache_mb": interval(20.0 if name == "latent" else 60.0, 18.0, 62.0), "peak_memory_mb": interval(900.0, 890, 910),
            "peak_memory_kind": "cuda", "input_tokens": interval(150.0, 140, 160), "output_tokens": interval(90.0, 80, 100),
            "throughput_samples_per_s": 3.5,
        }
        for name, value in accuracy.items()
    }  # fmt: skip
    comparisons = {
        f"latent_vs_{name}": {
            "accuracy_difference": interval(accuracy["latent"] - value, accuracy["latent"] - value - 0.04, accuracy["latent"] - value + 0.04),
            "mcnemar_p": 0.01, "kv_cache_mb_saved": interval(kv_saved, kv_saved - 5, kv_saved + 5),
            "latency_s_difference": interval(-0.1, -0.2, 0.0),
        }
        for name, value in accuracy.items() if name != "latent"
    }  # fmt: skip
    return {
        "run": "1a", "trained_run": "1a", "dataset": "gsm8k", "samples": 200, "soft_tokens": 64, "baselines": baselines,
        "comparisons": comparisons,
        "compression": {"mean_prompt_tokens": 150.0, "soft_tokens": 64, "ratio": 2.34, "kv_saved_mb_measured": kv_saved, "kv_saved_mb_seed_estimate": 43.0},
        "provenance": {"code_commit": "abc123", "config_sha256": "e" * 64},
    }  # fmt: skip


SUPPORTING_RUNS = {  # role -> bridged correct counts by step, and run options
    "1a": ({0: 5, 2: 33, 4: 32, "final": 33}, {}),
    "1b": ({0: 5, 2: 34, 4: 8, "final": 8}, {}),
    "2a": ({0: 2, 2: 10, 4: 10, "final": 10}, {"soft_tokens": 32}),
    "2b": ({0: 2, 2: 20, 4: 20, "final": 20}, {"soft_tokens": 48}),
    "3a": ({0: 2, 2: 35, 4: 35, "final": 35}, {"dataset": "hotpotqa", "source": 5, "target": 10}),
}


def study_of(tmp_path: Path, runs: dict, *, benchmark: dict | None = None, roles: dict | None = None, report: dict = REPORT):
    """A study of the given runs (role -> (bridged counts, options)); 2c reuses 1a as in config.yaml."""
    paths = {BRIDGE_RUN_PREFIX + role: write_run(tmp_path / "runs", role, bridged, **options) for role, (bridged, options) in runs.items()}
    if "1a" in runs:
        paths[BRIDGE_RUN_PREFIX + "2c"] = paths[BRIDGE_RUN_PREFIX + "1a"]
    if benchmark is not None:
        path = tmp_path / "inference" / "summary.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(benchmark))
        paths[BRIDGE_INFERENCE_PREFIX + "1a"] = path
    return load_bridge_study(paths, roles=roles or dict(report["roles"]), report=report, experiment="synthetic")


def verdicts(study) -> dict[str, str]:
    return {claim.key: claim.verdict for claim in evaluate_claims(study)}


def test_every_claim_is_supported_by_supporting_evidence(tmp_path):
    assert set(verdicts(study_of(tmp_path, SUPPORTING_RUNS, benchmark=benchmark_summary())).values()) == {"supported"}


def test_every_claim_is_not_yet_run_without_runs_or_benchmark(tmp_path):
    claims = evaluate_claims(study_of(tmp_path, {}))
    assert {claim.verdict for claim in claims} == {"not yet run"}
    assert all(part.outcome == "missing" and "not yet run" in part.numbers for claim in claims for part in claim.parts)


def test_claims_fail_on_contrary_evidence(tmp_path):
    contrary = {
        "1a": ({0: 5, 2: 20, 4: 8, "final": 8}, {}),  # collapses, ends below 1b
        "1b": ({0: 5, 2: 34, 4: 30, "final": 30}, {}),
        "2a": ({0: 2, 2: 30, 4: 30, "final": 30}, {"soft_tokens": 32}),  # fewer tokens, higher accuracy
        "2b": ({0: 2, 2: 20, 4: 20, "final": 20}, {"soft_tokens": 48}),
        "3a": ({0: 2, 2: 3, 4: 3, "final": 3}, {"dataset": "hotpotqa", "source": 20, "target": 30}),
    }
    found = verdicts(study_of(tmp_path, contrary, benchmark=benchmark_summary(latent_gain=-0.3, kv_saved=-10.0)))
    assert found == dict.fromkeys(found, "not supported")


def test_partial_when_only_some_tests_pass(tmp_path):
    runs = {**SUPPORTING_RUNS, "3a": ({0: 2, 2: 15, 4: 15, "final": 15}, {"dataset": "hotpotqa", "source": 5, "target": 30})}
    runs.pop("1b")  # the stable run's own test passes, the comparison with 1b is missing
    summary = benchmark_summary(latent_gain=0.0)  # beats source alone, not target alone
    claims = {claim.key: claim for claim in evaluate_claims(study_of(tmp_path, runs, benchmark=summary))}
    assert claims["fusion_beats_both"].verdict == "partial"
    assert [part.outcome for part in claims["fusion_beats_both"].parts] == ["pass", "inconclusive"]
    assert claims["stability_fixes_work"].verdict == "partial"
    assert [part.outcome for part in claims["stability_fixes_work"].parts] == ["missing", "pass"]
    assert claims["generalises_beyond_math"].verdict == "partial"
    assert claims["soft_tokens_beat_text"].verdict == "supported"


def test_a_verdict_rests_on_the_paired_interval_not_the_point_difference(tmp_path):
    # 1a ends one question above 1b: a positive point difference whose interval includes zero
    runs = {"1a": ({0: 5, 2: 33, "final": 21}, {}), "1b": ({0: 5, 2: 34, "final": 20}, {})}
    claim = next(c for c in evaluate_claims(study_of(tmp_path, runs)) if c.key == "stability_fixes_work")
    versus, kept = claim.parts
    assert versus.outcome == "inconclusive" and "+0.025" in versus.numbers and "40 paired questions" in versus.numbers
    assert kept.outcome == "fail"  # 1a lost 12 of 40 after its peak: its whole interval is above 0.10
    assert claim.verdict == "not supported"


def test_a_preserved_run_against_a_trained_one_is_paired_and_said_to_differ_in_more(tmp_path):
    """The paper preset's stability test: the original's 1a (rows holding the 8-shot prompt) against a 1b trained here."""
    runs = {"1a": ({0: 5, 2: 33, "final": 33}, {"origin": "legacy"}), "1b": ({0: 5, 2: 34, "final": 20}, {})}
    versus, _ = next(c for c in evaluate_claims(study_of(tmp_path, runs)) if c.key == "stability_fixes_work").parts
    assert versus.outcome == "pass" and "40 paired questions" in versus.numbers
    assert "1a is legacy, 1b is trained: they differ in more than the ablated settings" in versus.numbers
    trained = {"1a": ({0: 5, 2: 33, "final": 33}, {}), "1b": runs["1b"]}
    versus, _ = next(c for c in evaluate_claims(study_of(tmp_path / "trained", trained)) if c.key == "stability_fixes_work").parts
    assert "differ in more" not in versus.numbers


def test_a_missing_compression_run_leaves_the_rest_of_the_sweep_tested(tmp_path):
    runs = {role: SUPPORTING_RUNS[role] for role in ("1a", "2a")}
    claim = next(c for c in evaluate_claims(study_of(tmp_path, runs)) if c.key == "compression_tradeoff")
    assert [part.outcome for part in claim.parts] == ["pass", "missing"]
    assert "2b: not yet run" in claim.parts[1].numbers and "2c (1a)" not in claim.parts[1].numbers
    assert claim.verdict == "partial"


def test_the_runs_table_shows_every_role_reuse_and_missing_runs(tmp_path):
    runs = {role: SUPPORTING_RUNS[role] for role in ("1a", "1b", "3a")}
    table = runs_table(study_of(tmp_path, runs)).set_index("role")
    assert list(table.index) == ["1a", "1b", "2a", "2b", "2c", "3a", "ablB", "ablC", "swap", "swap_soft_only"]
    assert table.loc["1a", "peak"] == pytest.approx(33 / 40) and table.loc["1a", "peak step"] == 2
    assert table.loc["1a", "final"] == pytest.approx(33 / 40) and table.loc["1a", "gap to target"] == pytest.approx(3 / 40)
    assert table.loc["1b", "degradation"] == pytest.approx(26 / 40) and table.loc["1a", "stop"] == "max steps at 4"
    assert table.loc["2c", "note"] == "reuses 1a" and table.loc["2c", "final"] == table.loc["1a", "final"]
    assert table.loc["1a", "note"] == "" and table.loc["3a", "dataset"] == "hotpotqa"
    assert table.loc["2a", "origin"] == "not yet run" and pd_missing(table.loc["2a", "final"])
    assert table.loc["1a", "compression"] == pytest.approx(150 / 64) and table.loc["1a", "wall time"] == "12.5 s"


def test_a_reused_run_shows_its_own_forced_prompt_mode_not_its_owners(tmp_path):
    """2c asked for soft_plus_text with the DiT's prompt teacher: forced to soft_only, it trained as 1a did and reuses 1a."""
    study = study_of(tmp_path, {"1a": SUPPORTING_RUNS["1a"]})
    forced = dataclasses.replace(study, forced_prompt_modes={"1a": False, "2c": True})
    table = runs_table(forced).set_index("role")
    assert table.loc["2c", "note"] == "reuses 1a; prompt mode forced to soft_only" and table.loc["1a", "note"] == ""
    assert runs_table(study).set_index("role").loc["2c", "note"] == "reuses 1a"  # no config given: the summary's record


def pd_missing(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_a_legacy_run_in_a_role_shows_under_its_own_name(tmp_path):
    path = write_run(tmp_path / "legacy", "phase1_all_fix", SUPPORTING_RUNS["1a"][0], soft_tokens=-1, resolved_soft_tokens=2048,
                     origin="legacy", stop_reason="early_stop: Stopping early at step 4")  # fmt: skip
    roles = {**REPORT["roles"], "1a": "phase1_all_fix", "2c": "phase1_all_fix"}
    study = load_bridge_study({BRIDGE_RUN_PREFIX + "phase1_all_fix": path}, roles=roles, report=REPORT)
    table = runs_table(study).set_index("role")
    # soft_tokens -1 was a fixed K of 2048 in the original, not one soft token per prompt token
    assert (table.loc["1a", "run"], table.loc["1a", "origin"], table.loc["1a", "K"]) == ("phase1_all_fix", "legacy", "2048 (soft_tokens -1)")
    assert table.loc["1a", "stop"] == "early stop at 4" and pd_missing(table.loc["1a", "compression"])  # no prompt length in a legacy log
    assert table.loc["2c", "note"] == "reuses 1a"


def test_a_half_written_summary_is_named_with_the_command_that_rebuilds_it(tmp_path):
    path = write_run(tmp_path / "runs", "1a", SUPPORTING_RUNS["1a"][0])
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CorruptFileError, match=rf"{re.escape(str(path))} is corrupt \(line \d+, column \d+: .*`snakemake --forcerun {re.escape(str(path))}`"):
        load_bridge_study({BRIDGE_RUN_PREFIX + "1a": path}, roles=dict(REPORT["roles"]), report=REPORT)
    assert path.read_text() == text[: len(text) // 2]  # nothing deleted


def test_ablation_tables_compare_each_role_with_the_first_on_shared_questions(tmp_path):
    study = study_of(tmp_path, SUPPORTING_RUNS)
    stability = ablation_table(study, REPORT["ablations"][0]).set_index("role")
    assert stability.loc["1a", "95% CI"] == "reference"
    assert stability.loc["1b", "Δ final"] == pytest.approx(-25 / 40) and stability.loc["1b", "questions"] == QUESTIONS
    assert stability.loc["1b", "95% CI"].startswith("[-0.")
    dataset = ablation_table(study, REPORT["ablations"][2]).set_index("role")
    assert dataset.loc["3a", "95% CI"] == "no questions in common"  # GSM8K and HotpotQA questions differ
    direction = ablation_table(study, REPORT["ablations"][4]).set_index("role")
    assert direction.loc["swap", "origin"] == "not yet run" and direction.loc["swap", "95% CI"] == "swap not yet run"


def test_an_ablation_role_that_reuses_the_reference_run_is_no_second_measurement(tmp_path):
    """ablC with 1a's settings reuses 1a's translator (config.yaml): the components table compares nothing for it."""
    runs = {role: SUPPORTING_RUNS[role] for role in ("1a", "1b")}
    paths = {BRIDGE_RUN_PREFIX + role: write_run(tmp_path / "runs", role, bridged, **options) for role, (bridged, options) in runs.items()}
    paths[BRIDGE_RUN_PREFIX + "ablC"] = paths[BRIDGE_RUN_PREFIX + "1a"]
    study = load_bridge_study(paths, roles=dict(REPORT["roles"]), report=REPORT)
    components = ablation_table(study, next(a for a in REPORT["ablations"] if a["name"] == "components")).set_index("role")
    assert components.loc["ablC", "95% CI"] == "the same run as 1a (1a): nothing to compare"
    assert pd.isna(components.loc["ablC", "Δ final"]) and pd.isna(components.loc["ablC", "questions"])


def test_the_inference_table_lists_five_baselines_measured_or_not_yet_run(tmp_path):
    missing = inference_table(study_of(tmp_path / "a", {}))
    assert list(missing["baseline"]) == ["source_alone", "target_alone", "latent", "token_budget", "cascade"]
    assert set(missing["status"]) == {"not yet run"}
    measured = inference_table(study_of(tmp_path / "b", {}, benchmark=benchmark_summary())).set_index("baseline")
    assert measured.loc["cascade", "accuracy 95% CI"] == "[0.500, 0.600]"
    assert measured.loc["cascade", "latent − this"] == pytest.approx(0.15) and measured.loc["latent", "KV cache MB"] == 20.0
    assert pd_missing(measured.loc["latent", "latent − this"])


def test_expected_vs_observed_checks_ranges_and_shows_missing_runs(tmp_path):
    table = expected_table(study_of(tmp_path, SUPPORTING_RUNS)).set_index(["role", "metric"])
    assert table.loc[("2a", "peak"), "expected"] == "0.550–0.600" and table.loc[("2a", "peak"), "check"] == "below"
    assert table.loc[("2a", "degradation"), "expected"] == "< 0.100" and table.loc[("2a", "degradation"), "check"] == "as expected"
    assert table.loc[("2b", "compression"), "expected"] == "3.1×" and table.loc[("2b", "compression"), "check"] == "above"
    assert table.loc[("3a", "final"), "check"] == "no expectation"
    empty = expected_table(study_of(tmp_path / "empty", {})).set_index(["role", "metric"])
    assert empty.loc[("1a", "peak"), "check"] == "not yet run" and empty.loc[("1a", "peak"), "expected"] == "0.680"


def test_the_report_writes_tables_figures_and_the_page(tmp_path):
    study_paths = dict(study_of(tmp_path / "in", SUPPORTING_RUNS, benchmark=benchmark_summary()).sources)
    written = build_bridge_report(study_paths, tmp_path / "bridge", roles=REPORT["roles"], report=REPORT,
                                  descriptions={"1a": "All fixes."}, experiment="synthetic")  # fmt: skip
    expected = bridge_report_files(tmp_path, [ablation["name"] for ablation in REPORT["ablations"]])
    assert sorted(written) == sorted(path for files in expected.values() for path in files)
    for path in expected["figures"]:
        assert path.stat().st_size > 5000
    assert expected["figures"][1].read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "bridge" / "RESULTS.md").read_text()
    assert "## Claims" in page and "**supported**" in page and "All fixes." in page and "](figures/bridge_accuracy.png)" in page
    tex = (tmp_path / "bridge" / "tables" / "bridge_claims.tex").read_text()
    assert r"\begin{tabular}" in tex and "−" not in tex and "Δ" not in tex


def test_the_report_refuses_trained_runs_made_by_different_code_unless_allowed(tmp_path):
    study_paths = dict(study_of(tmp_path / "in", SUPPORTING_RUNS).sources)
    for key, code in ((BRIDGE_RUN_PREFIX + "1a", "1" * 64), (BRIDGE_RUN_PREFIX + "1b", "2" * 64)):
        summary = json.loads(Path(study_paths[key]).read_text())
        summary["provenance"]["library_code_sha256"] = code
        Path(study_paths[key]).write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"trained runs were made by different library code .*222222222222: 1b"):
        build_bridge_report(study_paths, tmp_path / "bridge", roles=REPORT["roles"], report=REPORT)
    assert not (tmp_path / "bridge").exists()
    written = build_bridge_report(study_paths, tmp_path / "bridge", roles=REPORT["roles"], report=REPORT, allow_mixed_code=True)
    assert tmp_path / "bridge" / "RESULTS.md" in written


def test_figures_are_drawn_when_nothing_has_run(tmp_path):
    written = build_bridge_report({}, tmp_path / "bridge", roles=REPORT["roles"], report=REPORT)
    assert all(path.stat().st_size > (1000 if path.suffix in (".pdf", ".png") else 0) for path in written)
    assert "not yet run" in (tmp_path / "bridge" / "RESULTS.md").read_text()


def test_the_parity_table_sets_a_preserved_run_beside_its_rerun(tmp_path):
    legacy = write_run(tmp_path / "legacy", "phase1_all_fix", {0: 5, 2: 33, 4: 32, "final": 20}, soft_tokens=-1, origin="legacy")
    rerun = write_run(tmp_path / "runs", "phase1_rerun", {0: 5, 2: 30, 4: 30, "final": 30}, soft_tokens=-1, resolved_soft_tokens=2048)
    for path, settings in ((legacy, {"soft_tokens": -1, "lr": 0.0001, "source_model": "org/mistral", "eval_samples": 40,
                                     "log_dir": "runs/x", "dit_cond_dim": 512}),
                           (rerun, {"soft_tokens": -1, "lr": 0.0002, "source": "mistral", "prompt_mode_forced": False})):  # fmt: skip
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({**summary, "settings": settings}))
    paths = {BRIDGE_RUN_PREFIX + "phase1_all_fix": legacy, BRIDGE_RUN_PREFIX + "phase1_rerun": rerun}
    parity_config = {"bridge": {"models": {"mistral": {"id": "org/mistral"}}, "eval": {"samples": 40}}}
    study = load_bridge_study(paths, roles=REPORT["roles"], report=REPORT, reproductions={"phase1_all_fix": "phase1_rerun"},
                              parity_config=parity_config)  # fmt: skip
    row = parity_table(study).iloc[0]
    assert (row["same"], row["differs"], row["no counterpart"], row["differing keys"]) == (3, 1, 2, "lr")
    assert (row["preserved final"], row["re-run final"]) == (0.5, 0.75)
    assert row["Δ final"] == pytest.approx(0.25) and row["questions"] == QUESTIONS and row["95% CI"].startswith("[+0.")
    missing = load_bridge_study({BRIDGE_RUN_PREFIX + "phase1_all_fix": legacy}, roles=REPORT["roles"], report=REPORT,
                                reproductions={"phase1_all_fix": "phase1_rerun"})  # fmt: skip
    assert parity_table(missing).iloc[0]["95% CI"] == "phase1_rerun not yet run"
    assert parity_table(study_of(tmp_path / "none", {})).empty


def test_a_reproduced_by_naming_no_run_is_a_config_error():
    config = {"studies": ["bridge"], "bridge": {"legacy": [{"name": "old", "path": "p", "reproduced_by": "rerun"}]}}
    with pytest.raises(ConfigError, match=r"'bridge.legacy\[0\].reproduced_by': 'rerun' is not a bridge run"):
        validate_config(config)


def test_legacy_roles_take_their_role_and_clashes_are_config_errors():
    from ablation.config import ConfigError

    config = {"studies": ["bridge"], "bridge": {"legacy": [{"name": "phase1_all_fix", "path": "p", "role": "1a"}]}}
    assert role_runs(validate_config(copy.deepcopy(config))["bridge"])["1a"] == "phase1_all_fix"
    clash = copy.deepcopy(config)
    clash["bridge"]["legacy"].append({"name": "other", "path": "q", "role": "1a"})
    clash["bridge"]["report"] = {"claims": {"generalises_beyond_math": {"role": "4x"}}}
    with pytest.raises(ConfigError) as raised:
        validate_config(clash)
    assert "role '1a' is taken by 2 legacy runs" in str(raised.value)
    assert "'bridge.report.claims.generalises_beyond_math.role': unknown role '4x'" in str(raised.value)


REPOSITORY = Path(__file__).resolve().parents[2]
PAPER_PRESET = REPOSITORY / "presets" / "latentwire-paper.yaml"


@pytest.mark.workflow
def test_the_paper_preset_plans_imports_and_only_the_missing_runs_without_the_data(tmp_path):
    from tests.helpers import planned_jobs, snakemake

    preset = yaml.safe_load(PAPER_PRESET.read_text())
    legacy = {entry["name"]: entry for entry in preset["bridge"]["legacy"]}
    assert {entry["role"] for entry in legacy.values()} == {"1a", "ablB", "ablC", "swap", "swap_soft_only"}
    assert not any((tmp_path / entry["path"]).exists() for entry in legacy.values())
    jobs = planned_jobs(snakemake(tmp_path, PAPER_PRESET, "--dry-run"))
    assert jobs["import_legacy_run"] == len(legacy) and jobs["train_bridge"] == len(preset["bridge"]["runs"])
    assert jobs["report_bridge"] == 1


@pytest.mark.workflow
def test_the_import_rule_imports_a_legacy_dir_and_fails_cleanly_on_a_bad_one(tmp_path):
    from tests.helpers import snakemake

    write_legacy_run(tmp_path / "preserved" / "run_1")
    broken = write_legacy_run(tmp_path / "preserved" / "run_2") / "exp" / "eval_samples_step_2.jsonl"
    broken.write_text(broken.read_text()[:-40])  # the last line cut short
    config = {
        "studies": ["bridge"],
        "bridge": {"legacy": [
            {"name": "old", "path": "preserved/run_1", "role": "1a"},
            {"name": "gone", "path": "preserved/absent"},
            {"name": "broken", "path": "preserved/run_2"},
        ]},
    }  # fmt: skip
    configfile = tmp_path / "legacy.yaml"
    configfile.write_text(yaml.safe_dump(config))
    targets = [f"results/bridge/legacy/{name}/summary.json" for name in ("old", "gone", "broken")]
    result = snakemake(tmp_path, configfile, "--keep-going", *targets)
    assert result.returncode != 0
    legacy = tmp_path / "results" / "bridge" / "legacy"
    summary = json.loads((legacy / "old" / "summary.json").read_text())
    assert (summary["origin"], summary["role"], summary["run"]) == ("legacy", "1a", "old")
    logs = tmp_path / "logs" / "import_legacy_run"
    assert "preserved/absent: no such directory" in (logs / "gone.log").read_text()
    assert "preserved/run_2/exp/eval_samples_step_2.jsonl:4: not a JSON line" in (logs / "broken.log").read_text()
    for name in ("gone", "broken"):  # nothing written for a run that failed
        assert not (legacy / name).exists() or not any((legacy / name).iterdir())
    assert not [path for path in legacy.iterdir() if path.name.startswith(".")]  # no staging directory left


def test_a_hotpotqa_run_under_the_gsm8k_rule_is_reported_as_not_scorable(tmp_path):
    from ablation.bridge.answers import INVALID
    from ablation.bridge.data import UNSCORABLE, unscorable_note
    from ablation.bridge.report.page import bridge_results_markdown
    from ablation.bridge.report.tables import bridge_tables

    study_paths = dict(study_of(tmp_path / "in", SUPPORTING_RUNS).sources)
    run_dir = tmp_path / "in" / "runs" / "3a"
    for samples in run_dir.glob("eval_samples_step_*.jsonl"):  # as the original's rule extracts them: no gold has a number
        rows = [json.loads(line) for line in samples.read_text().splitlines()]
        rows = [{**row, **{key: INVALID for key in row if key.endswith("_extracted")}} for row in rows]
        samples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(scoring="gsm8k", notes=unscorable_note("hotpotqa", "gsm8k"))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    study = load_bridge_study(study_paths, roles=dict(REPORT["roles"]), report=REPORT, experiment="synthetic")
    table = runs_table(study).set_index("role")
    assert "not scorable" in table.loc["3a", "note"] and "not scorable" not in table.loc["1a", "note"]
    assert set(study.runs["3a"].scores("final").values()) == {0.0}  # an [invalid] never matches, not even the gold's
    claims = evaluate_claims(study)
    assert UNSCORABLE in bridge_results_markdown(study, bridge_tables(study, claims), claims, tmp_path)
    generalises = next(claim for claim in claims if claim.key == "generalises_beyond_math")
    assert generalises.verdict == "not yet run" and {part.outcome for part in generalises.parts} == {"missing"}  # never a failure
    assert all("3a: not scorable" in part.numbers for part in generalises.parts)
