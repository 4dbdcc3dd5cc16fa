"""The legacy-run importer on small runs each test writes, one per oddity of the original's logs,
and on the preserved run in shared/legacy when it is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablation.bridge.data import UNSCORABLE
from ablation.bridge.original_runs import LegacyImportError, import_legacy_run, tolerance
from ablation.bridge.prompts import asked_question, task_prompt
from ablation.bridge.run_format import HISTORY_FIELDS, SUMMARY_FIELDS
from tests.bridge.legacy_logs import CONFIG, CUDA_WARNING, EVALS, eval_line, log_text, write_run

LEGACY_RUN = Path(__file__).resolve().parents[3] / "shared" / "legacy" / "prompt_softonly_phase2_swap_20251119_001243"

AGREES = {"agrees": True, "disagreements": []}


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text(encoding="utf-8").splitlines()]


def test_imports_a_clean_run(tmp_path):
    run = write_run(tmp_path / "run")
    summary = import_legacy_run(run, tmp_path / "out", name="swap", role="phase2", provenance_extra={"note": "test"})

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["history.jsonl", "summary.json"] + [f"eval_samples_step_{step}.jsonl" for step in EVALS])
    assert json.loads((out / "summary.json").read_text()) == summary
    assert set(summary) == set(SUMMARY_FIELDS)
    rows = history(out)
    assert [row["step"] for row in rows] == [0, 2, 4, "final"]
    assert all(list(row) == list(HISTORY_FIELDS) for row in rows)
    assert rows[1] == {"step": 2, "source_acc": 0.75, "target_acc": 0.5, "bridged_acc": 0.5, "samples": 4,
                       "invalid": {"source": 0, "target": 0, "bridged": 2}}
    assert (summary["run"], summary["study"], summary["origin"], summary["role"]) == ("swap", "bridge", "legacy", "phase2")
    assert (summary["source_acc"], summary["target_acc"]) == (0.75, 0.5)
    assert (summary["peak_bridged_acc"], summary["peak_step"]) == (0.5, 2)
    assert (summary["final_bridged_acc"], summary["degradation"]) == (0.5, 0.0)
    assert summary["steps_evaluated"] == [0, 2, 4, "final"]
    assert summary["invalid_per_step"]["0"] == {"source": 0, "target": 0, "bridged": 4}
    assert summary["stop_reason"] == "max_steps"
    assert summary["wall_seconds"] == 6856.0  # 00:12:49 -> 02:07:05
    assert summary["log_check"] == AGREES
    assert summary["provenance"]["experiment"] == "exp" and summary["provenance"]["note"] == "test"
    assert summary["provenance"]["summary_log"]["end_time"] == "Wed Nov 19 02:07:05 AM PST 2025"
    assert (out / "eval_samples_step_2.jsonl").read_bytes() == (run / "exp" / "eval_samples_step_2.jsonl").read_bytes()


def test_reads_the_config_block_into_typed_settings(tmp_path):
    config = {**CONFIG, "weight_decay": "1e-2", "log_dir": "runs/x: y", "empty": ""}
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(config=config)), tmp_path / "out", name="r")
    settings = summary["settings"]
    assert settings["bridge"] == "dit" and settings["dit_pool"] == "mean"
    assert settings["soft_tokens"] == -1 and settings["train_steps"] == 4
    assert settings["lr"] == 0.0001 and settings["weight_decay"] == 0.01
    assert settings["bf16"] is True and settings["dit_cfg_dropout"] is None
    assert settings["log_dir"] == "runs/x: y" and settings["empty"] == ""
    assert "Base seed" not in settings  # the block ends at the first line that is not `key: value`
    assert summary["soft_tokens"] == -1 and summary["resolved_soft_tokens"] is None  # this log does not say which K
    assert any("min(the source tokenizer's model_max_length, 2048), its log does not say which" in note for note in summary["notes"])


def test_soft_tokens_minus_one_is_the_fixed_k_the_log_says_it_capped_to(tmp_path):
    """The original resolved soft_tokens <= 0 to K = min(model_max_length, 2048) and logged it; K is not the prompt's length."""
    body = ["Soft tokens not specified; capping to 2048 tokens"] + [eval_line(step, correct) for step, correct in EVALS.items()]
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(body)), tmp_path / "out", name="r")
    assert (summary["soft_tokens"], summary["resolved_soft_tokens"]) == (-1, 2048)
    assert any("K = 2048 (its log: 'capping to 2048 tokens')" in note for note in summary["notes"])


def test_strips_rank_prefixes(tmp_path):
    prefixes = ("[Rank 0] ", "[rank0]: ", "[Rank 0/1] ")
    lines = log_text().splitlines()
    log = "\n".join(prefixes[number % 3] + line for number, line in enumerate(lines)) + "\n"
    summary = import_legacy_run(write_run(tmp_path / "run", log), tmp_path / "out", name="r")
    assert summary["settings"]["bridge"] == "dit" and summary["settings"]["train_steps"] == 4
    assert summary["log_check"] == AGREES
    assert summary["wall_seconds"] == 6856.0


def test_splits_tqdm_carriage_returns(tmp_path):
    bar = "\rShards:  50%|█████     | 2/4 [00:01<00:01,  1.9it/s]\rShards: 100%|██████████| 4/4 [00:02<00:00]"
    body = [eval_line(0, EVALS[0]) + "\r", bar + "\r" + eval_line(2, EVALS[2]), bar + "\r" + eval_line(4, EVALS[4]) + bar,
            eval_line("final", EVALS["final"])]
    log = bar + "\r" + log_text(body).replace("\n", "\r\n").replace("train_steps: 4\r\n", "train_steps: 4\r")
    summary = import_legacy_run(write_run(tmp_path / "run", log), tmp_path / "out", name="r")
    assert summary["log_check"] == AGREES
    assert summary["wall_seconds"] == 6856.0  # the timestamped warning right after a bar
    assert summary["settings"]["train_steps"] == 4 and summary["settings"]["dit_pool"] == "mean"


def test_skips_warnings(tmp_path):
    warning = ("/site-packages/transformers/generation/configuration_utils.py:590: UserWarning: `do_sample` is set to"
               " `False`. However, `temperature` is set to `0.6`")
    body = [warning, "  warnings.warn(", eval_line(0, EVALS[0]), CUDA_WARNING, eval_line(2, EVALS[2]), warning,
            eval_line(4, EVALS[4]), eval_line("final", EVALS["final"])]
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(body)), tmp_path / "out", name="r")
    assert summary["log_check"] == AGREES
    assert summary["wall_seconds"] == 6856.0  # the first timestamp, not a later one


def test_reads_the_config_block_to_its_end_past_other_ranks_lines(tmp_path):
    """torchrun's prefixes: rank 0 echoes the block while rank 1 and stderr warnings print between its lines."""
    entries = [f"[default0]:{key}: {value}" for key, value in CONFIG.items()]
    interleaved = ["[default1]:Loading source model/tokenizer...", "[default1]:Result: True", CUDA_WARNING,
                   "/site-packages/x.py:1: UserWarning: slow", "  warnings.warn("]  # fmt: skip
    block = ["[default0]:==== Config ===="] + [line for pair in zip(entries, interleaved + [""] * len(entries)) for line in pair if line]
    body = block + ["[default0]:", "[default0]:Result: True"] + [eval_line(step, correct) for step, correct in EVALS.items()]
    summary = import_legacy_run(write_run(tmp_path / "run", "\n".join(body) + "\n"), tmp_path / "out", name="r")
    assert summary["settings"] == {**CONFIG, "soft_tokens": -1, "lr": 0.0001, "train_steps": 4, "bf16": True, "dit_cfg_dropout": None}


def test_imports_the_older_format_without_a_source_side(tmp_path):
    """Older logs print '[Eval] Step N | Target-alone … | Bridged …' and sample no source answers."""
    run = write_run(tmp_path / "run")
    for path in (run / "exp").glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in row.items() if not k.startswith("source_")}) + "\n" for row in rows))
    log = log_text().replace("Source-alone acc: 0.750 | ", "")
    assert "Source-alone" not in log
    (run / "exp" / "train.log").write_text(log)
    summary = import_legacy_run(run, tmp_path / "out", name="r")
    assert summary["log_check"] == AGREES
    assert summary["source_acc"] is None and summary["target_acc"] == 0.5
    assert history(tmp_path / "out")[1]["invalid"] == {"source": None, "target": 0, "bridged": 2}
    assert any("no source-alone accuracy" in note for note in summary["notes"])


def test_loss_lines_become_the_loss_history(tmp_path):
    body = ["Step 20/4 | Loss (avg over last 20): 191.8930", "Step 40/4 | Loss (avg over last 20): 190.8795 | DiT flow: 0.5012",
            *(eval_line(step, correct) for step, correct in EVALS.items())]  # fmt: skip
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(body)), tmp_path / "out", name="r")
    lines = (tmp_path / "out" / "loss_history.csv").read_text().splitlines()
    assert lines == ["step,total,window,dit_flow", "20,191.893,20,", "40,190.8795,20,0.5012"]
    # the original's final evaluation read the last weights, and the summary says so
    assert any("read the last weights" in note for note in summary["notes"])


@pytest.mark.parametrize(
    ("early_stop", "expected"),
    [
        (["No improvement, patience: 1/3", "New best bridged acc: 0.500, resetting patience",
          "No improvement, patience: 3/3", "Stopping early at step 4. Best bridged acc: 0.500"],
         "early_stop: Stopping early at step 4. Best bridged acc: 0.500"),
        (["No improvement, patience: 2/2"], "early_stop: No improvement, patience: 2/2"),
        (["No improvement, patience: 1/3"], "max_steps"),  # patience left at the last step: the budget ended it
    ],
)
def test_reads_the_stop_reason(tmp_path, early_stop, expected):
    body = [eval_line(step, correct) for step, correct in EVALS.items() if step != "final"]
    body += [f"[Early Stop] {message}" for message in early_stop] + [eval_line("final", EVALS["final"])]
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(body)), tmp_path / "out", name="r")
    assert summary["stop_reason"] == expected


def test_stop_reason_is_unknown_when_the_log_ends_before_the_step_budget(tmp_path):
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(config={**CONFIG, "train_steps": "2000"})),
                                tmp_path / "out", name="r")
    assert summary["stop_reason"] == "unknown"


def test_reads_the_final_line(tmp_path):
    evals = {0: (3, 2, 0), 2: (3, 2, 4), "final": (3, 2, 1)}
    summary = import_legacy_run(write_run(tmp_path / "run", log_text([eval_line(s, c) for s, c in evals.items()]), evals),
                                tmp_path / "out", name="r")
    assert summary["log_check"] == AGREES
    assert (summary["peak_bridged_acc"], summary["peak_step"]) == (1.0, 2)
    assert (summary["final_bridged_acc"], summary["degradation"]) == (0.25, 0.75)
    assert summary["steps_evaluated"][-1] == "final"


def test_a_run_without_a_final_evaluation_ends_at_its_last_step(tmp_path):
    evals = {step: correct for step, correct in EVALS.items() if step != "final"}
    summary = import_legacy_run(write_run(tmp_path / "run", log_text([eval_line(s, c) for s, c in evals.items()]), evals),
                                tmp_path / "out", name="r")
    assert summary["steps_evaluated"] == [0, 2, 4]
    assert summary["final_bridged_acc"] == 0.25 and summary["degradation"] == 0.25
    assert summary["log_check"] == AGREES
    assert any("no final evaluation" in note for note in summary["notes"])


def test_keeps_non_ascii_text(tmp_path):
    log = log_text().replace("Base seed: 1234", "Base seed: 1234\nÉtape → ✓ 数学 🙂")
    run = write_run(tmp_path / "run", log, question="Combien coûte le café № {index} — 𝜋?")
    summary = import_legacy_run(run, tmp_path / "out", name="r")
    assert summary["log_check"] == AGREES
    row = json.loads((tmp_path / "out" / "eval_samples_step_0.jsonl").read_text(encoding="utf-8").splitlines()[1])
    assert row["question"] == "Combien coûte le café № 1 — 𝜋?"


def test_handles_quotes_in_directory_names(tmp_path):
    run = write_run(tmp_path / "run \"quoted\" 'single'", experiment="exp \"a\" 'b'")
    out = tmp_path / "out \"x\" 'y'"
    summary = import_legacy_run(run, out, name="quoted")
    assert summary["provenance"]["experiment"] == "exp \"a\" 'b'"
    assert summary["provenance"]["source_dir"] == str(run.resolve())
    assert (out / "summary.json").is_file()


def test_reports_disagreements_with_the_log(tmp_path):
    body = [eval_line(0, EVALS[0]), eval_line(2, (3, 2, 3)), eval_line(4, EVALS[4]), eval_line(6, (3, 2, 1))]
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(body)), tmp_path / "out", name="r")
    disagreements = summary["log_check"]["disagreements"]
    assert summary["log_check"]["agrees"] is False
    assert {"step": 2, "field": "bridged_acc", "log": 0.75, "recomputed": 0.5} in disagreements
    assert {"step": 6, "field": "source_acc", "log": 0.75, "recomputed": None} in disagreements  # logged, no samples
    assert {"step": "final", "field": "bridged_acc", "log": None, "recomputed": 0.5} in disagreements  # samples only
    assert len(disagreements) == 1 + 3 + 3
    assert summary["final_bridged_acc"] == 0.5  # the samples decide, not the log


@pytest.mark.parametrize(("printed", "agrees"), [("0.333", True), ("0.3333", True), ("0.334", False), ("0.33", True)])
def test_tolerance_is_half_a_unit_of_the_printed_precision(printed, agrees):
    assert (abs(float(printed) - 1 / 3) <= tolerance(printed)) is agrees
    assert tolerance("0.765") == pytest.approx(0.0005)


@pytest.mark.parametrize(
    ("first_stamp", "end", "seconds"),
    [
        (CUDA_WARNING, "Wed Nov 19 02:07:05 PST 2025", 6856.0),  # `date` without AM/PM
        ("[rank0]:[W1231 23:00:00.1 ProcessGroupNCCL.cpp:1] Warning: x", "Thu Jan  1 01:00:00 AM PST 2026", 7200.0),
        ("2025-11-19 00:12:49,123 INFO starting", "2025-11-19T02:07:05", 6856.0),
    ],
)
def test_wall_time_from_the_first_timestamp_to_the_end_time(tmp_path, first_stamp, end, seconds):
    log = log_text().replace(CUDA_WARNING, first_stamp)
    summary = import_legacy_run(write_run(tmp_path / "run", log, summary_log=f"End time: {end}\n"), tmp_path / "out", name="r")
    assert summary["wall_seconds"] == seconds


def test_wall_time_is_null_without_a_readable_end_time(tmp_path):
    no_summary = import_legacy_run(write_run(tmp_path / "a", summary_log=None), tmp_path / "out_a", name="a")
    unreadable = import_legacy_run(write_run(tmp_path / "b", summary_log="End time: sometime\n"), tmp_path / "out_b", name="b")
    no_stamp = import_legacy_run(write_run(tmp_path / "c", log_text().replace(CUDA_WARNING + "\n", "")),
                                 tmp_path / "out_c", name="c")
    assert no_summary["wall_seconds"] is None and no_summary["provenance"]["summary_log"] is None
    assert unreadable["wall_seconds"] is None
    assert no_stamp["wall_seconds"] is None


def test_a_hotpotqa_run_is_scored_as_the_original_scored_it(tmp_path):
    """The original showed and scored HotpotQA as GSM8K ('#### n'): the import says so, and the report then
    treats the run as one that cannot score, as it does a trained run with scoring: gsm8k."""
    summary = import_legacy_run(write_run(tmp_path / "run", log_text(config={**CONFIG, "dataset": "hotpotqa"})),
                                tmp_path / "out", name="r")
    assert summary["dataset"] == "hotpotqa" and (summary["prompts"], summary["scoring"]) == ("gsm8k", "gsm8k")
    assert UNSCORABLE in summary["notes"]
    assert "bridged_f1" not in history(tmp_path / "out")[1]
    gsm8k = import_legacy_run(write_run(tmp_path / "gsm8k_run"), tmp_path / "gsm8k_out", name="r")
    assert (gsm8k["prompts"], gsm8k["scoring"]) == ("gsm8k", "gsm8k") and UNSCORABLE not in gsm8k["notes"]


def test_detects_the_experiment_or_takes_the_one_named(tmp_path):
    run = write_run(tmp_path / "run")
    write_run(run, experiment="second", summary_log=None)
    with pytest.raises(LegacyImportError, match="exp, second"):
        import_legacy_run(run, tmp_path / "out", name="r")
    assert import_legacy_run(run, tmp_path / "out", name="r", experiment="second")["provenance"]["experiment"] == "second"


def truncate_last_line(run: Path):
    path = run / "exp" / "eval_samples_step_2.jsonl"
    path.write_bytes(path.read_bytes()[:-40])


def garble_second_line(run: Path):
    path = run / "exp" / "eval_samples_step_4.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], "not json", *lines[2:]]) + "\n", encoding="utf-8")


def drop_a_field(run: Path):
    path = run / "exp" / "eval_samples_step_0.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    del rows[0]["bridged_extracted"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


BAD_RUNS = {
    "missing train.log": (lambda run: (run / "exp" / "train.log").unlink(), r"train\.log"),
    "no eval samples": (lambda run: [p.unlink() for p in (run / "exp").glob("*.jsonl")], "no eval_samples_step"),
    "truncated JSONL line": (truncate_last_line, r"eval_samples_step_2\.jsonl:4: not a JSON line"),
    "invalid JSONL line": (garble_second_line, r"eval_samples_step_4\.jsonl:2: not a JSON line"),
    "row without an extracted answer": (drop_a_field, r"eval_samples_step_0\.jsonl:1: .*bridged_extracted"),
    "log without an eval line": (lambda run: (run / "exp" / "train.log").write_text(log_text([])), r"train\.log: no"),
    "unknown dataset": (lambda run: (run / "exp" / "train.log").write_text(log_text(config={**CONFIG, "dataset": "squad"})),
                        r"train\.log: unknown bridge dataset 'squad'"),
}


@pytest.mark.parametrize("case", BAD_RUNS)
def test_bad_input_raises_naming_the_file_and_writes_nothing(tmp_path, case):
    break_run, message = BAD_RUNS[case]
    run = write_run(tmp_path / "run")
    break_run(run)
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("an earlier import")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LegacyImportError, match=message):
        import_legacy_run(run, out, name="r")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [p.name for p in out.iterdir()] == ["earlier.txt"]


@pytest.mark.skipif(not LEGACY_RUN.is_dir(), reason="shared/legacy is not beside the repository")
def test_imports_the_preserved_legacy_run(tmp_path):
    summary = import_legacy_run(LEGACY_RUN, tmp_path / "out", name="phase2_swap")

    # every accuracy recomputed from the JSONL matches the log's "[Eval] Step N" and "[Final Eval]" lines
    assert summary["log_check"] == AGREES
    assert summary["steps_evaluated"] == [0, 250, 500, 750, 1000, 1250, 1500, 1750, 2000, "final"]
    rows = history(tmp_path / "out")
    assert [row["bridged_acc"] for row in rows] == [0.0, 0.0, 0.005, 0.01, 0.0, 0.0, 0.025, 0.005, 0.025, 0.025]
    assert {(row["source_acc"], row["target_acc"]) for row in rows} == {(0.765, 0.515)}
    assert rows[2]["invalid"] == {"source": 7, "target": 30, "bridged": 153}
    assert (summary["final_bridged_acc"], summary["peak_bridged_acc"], summary["peak_step"]) == (0.025, 0.025, 1500)
    assert summary["settings"]["bridge"] == "dit" and summary["settings"]["dit_teacher"] == "prompt"
    assert summary["soft_tokens"] == summary["settings"]["soft_tokens"] == -1
    assert summary["resolved_soft_tokens"] == 2048  # "Soft tokens not specified; capping to 2048 tokens": a fixed K
    assert "K = 2048 (its log: 'capping to 2048 tokens')" in " ".join(summary["notes"])
    assert summary["stop_reason"] == "max_steps"  # patience was at 2/3 when step 2000 came
    assert summary["wall_seconds"] == 6856.0
    assert summary["provenance"]["experiment"] == "phase2_swap_all_fix"
    losses = (tmp_path / "out" / "loss_history.csv").read_text().splitlines()
    assert losses[0] == "step,total,window" and losses[1] == "20,191.893,20" and len(losses) == 1 + 100


@pytest.mark.skipif(not LEGACY_RUN.is_dir(), reason="shared/legacy is not beside the repository")
def test_the_preserved_rows_ask_their_question_inside_the_whole_prompt():
    """The original's rows hold the 8-shot prompt in ``question``; the report pairs them by the question it asks."""
    rows = [json.loads(line) for line in (LEGACY_RUN / "phase2_swap_all_fix" / "eval_samples_step_0.jsonl").read_text().splitlines()]
    asked = [asked_question(row["question"]) for row in rows]
    assert asked[0].startswith("Janet’s ducks lay 16 eggs per day.") and asked[0].endswith("at the farmers' market?")
    assert all("\nQ: " not in question and len(question) < len(row["question"]) for question, row in zip(asked, rows))
    assert asked_question(asked[0]) == asked[0]  # a bare question is its own
    hotpotqa = task_prompt("hotpotqa", {"question": "Q: where?", "context": {"title": ["T"], "sentences": [["S."]]}})
    assert asked_question(hotpotqa) == hotpotqa
