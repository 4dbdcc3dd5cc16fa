"""The parity command: a preset's run against the config block a preserved train.log echoes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablation.bridge.original_runs import parse_config_block
from ablation.bridge.parity import DIFFERS, NO_COUNTERPART, SAME, load_run, main, parity_config, parity_rows

REPOSITORY = Path(__file__).resolve().parents[2]
ORIGINAL_PRESET = REPOSITORY / "presets" / "latentwire-original.yaml"
LEGACY_LOG = REPOSITORY.parent / "shared" / "legacy" / "prompt_softonly_phase2_swap_20251119_001243" / "phase2_swap_all_fix" / "train.log"

SWAP_BLOCK = {  # a few keys of the soft_only swap's block, one of each kind
    "source_model": "meta-llama/Meta-Llama-3.1-8B-Instruct", "target_model": "mistralai/Mistral-7B-Instruct-v0.3",
    "soft_tokens": "-1", "eval_prompt_mode": "soft_only", "eval_samples": "200", "bf16": "True", "bridge": "dit",
    "lr": "0.0001", "dit_teacher": "prompt", "prompt_alignment_weight": "1.0",
    "log_dir": "paper_writing/runs/x", "save_path": "paper_writing/runs/x/checkpoint.pt", "dit_cond_dim": "512",
}  # fmt: skip


def write_log(path: Path, block: dict) -> Path:
    lines = ["[Rank 0] Reproducibility enabled", "==== Config ====", *(f"{key}: {value}" for key, value in block.items()), ""]
    path.write_text("\n".join(lines + ["[Eval] Step 0 | Source-alone acc: 0.765 | Target-alone acc: 0.515 | Bridged acc: 0.000"]) + "\n")
    return path


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.skipif(not LEGACY_LOG.is_file(), reason="shared/legacy is not beside the repository")
def test_the_original_preset_matches_the_preserved_swap_on_every_key_with_a_counterpart(capsys):
    code, out, _ = run_main(capsys, "--config", ORIGINAL_PRESET, "--run", "phase2_swap_soft_only", "--log", LEGACY_LOG)
    assert code == 0, out
    assert "39 of 39 keys with a counterpart are the same" in out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line}
    assert rows["world_size"].split()[1:] == ["1", "1", SAME]  # its [Rank 0/1]: one process, as the preset sets it
    assert rows["kl_max_length"].split()[1:] == ["512", "512", SAME]  # token_layout original cuts its KL baseline there
    assert rows["log_dir"].endswith(NO_COUNTERPART) and rows["save_path"].endswith(NO_COUNTERPART)


@pytest.mark.skipif(not LEGACY_LOG.is_file(), reason="shared/legacy is not beside the repository")
def test_the_reports_parity_config_answers_every_key_of_a_preserved_log():
    """The report compares with the part of the config ``parity_config`` hands it (the dataset key included)."""
    config, settings = load_run(ORIGINAL_PRESET, "phase2_swap_soft_only")
    original = parse_config_block(LEGACY_LOG)
    assert "dataset" in original
    assert parity_rows(original, settings, parity_config(config["bridge"])) == parity_rows(original, settings, config)


def test_the_world_size_of_a_logs_rank_prefixes_is_compared_with_the_runs_processes(tmp_path):
    """Four [Rank r/4] processes against the preset's one for phase2_swap_soft_only: the global batch differs."""
    log = write_log(tmp_path / "train.log", SWAP_BLOCK)
    log.write_text("".join(f"[Rank {rank}/4] Starting DDP initialization...\n" for rank in range(4)) + log.read_text())
    original = parse_config_block(log)
    assert original["world_size"] == 4
    config, settings = load_run(ORIGINAL_PRESET, "phase2_swap_soft_only")
    assert settings["processes"] == 1
    assert {row["key"]: row["verdict"] for row in parity_rows(original, settings, config)}["world_size"] == DIFFERS
    _, four = load_run(ORIGINAL_PRESET, "phase2_swap")  # resources.bridge_train.gpus: 4
    assert four["processes"] == 4


def test_a_deliberate_difference_is_flagged(tmp_path, capsys):
    log = write_log(tmp_path / "train.log", {**SWAP_BLOCK, "lr": "0.0002"})
    code, out, _ = run_main(capsys, "--config", ORIGINAL_PRESET, "--run", "phase2_swap_soft_only", "--log", log)
    assert code == 1
    assert "differing: lr" in out
    config, settings = load_run(ORIGINAL_PRESET, "phase2_swap_soft_only")
    verdicts = {row["key"]: row["verdict"] for row in parity_rows(parse_config_block(log), settings, config)}
    assert verdicts == {**dict.fromkeys(SWAP_BLOCK, SAME), "lr": DIFFERS,
                        "log_dir": NO_COUNTERPART, "save_path": NO_COUNTERPART, "dit_cond_dim": NO_COUNTERPART}  # fmt: skip


def test_the_first_swap_is_soft_plus_text_only_with_the_fix_turned_off(tmp_path):
    original = parse_config_block(write_log(tmp_path / "train.log", {**SWAP_BLOCK, "eval_prompt_mode": "soft_plus_text"}))

    def verdict(preset: Path) -> str:
        config, settings = load_run(preset, "phase2_swap")
        return {row["key"]: row["verdict"] for row in parity_rows(original, settings, config)}["eval_prompt_mode"]

    assert verdict(ORIGINAL_PRESET) == SAME
    forced = tmp_path / "forced.yaml"  # the seeds' fix on: the prompt teacher reads soft_only
    forced.write_text(ORIGINAL_PRESET.read_text().replace("prompt_teacher_forces_soft_only: false", "prompt_teacher_forces_soft_only: true"))
    assert verdict(forced) == DIFFERS


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no config block", "train.log: no '==== Config ====' block"),
        ("unknown run", "no bridge run 'phase3'"),
        ("unknown preset key", "unknown config key 'bridge.runs.phase1_all_fix.soft_tokenz'"),
    ],
)
def test_bad_input_gets_an_error_naming_it(tmp_path, capsys, case, message):
    log = write_log(tmp_path / "train.log", SWAP_BLOCK)
    preset, run = ORIGINAL_PRESET, "phase1_all_fix"
    if case == "no config block":
        log.write_text("[Eval] Step 0 | Source-alone acc: 0.765 | Target-alone acc: 0.515 | Bridged acc: 0.000\n")
    elif case == "unknown run":
        run = "phase3"
    else:
        preset = tmp_path / "bad.yaml"
        preset.write_text(ORIGINAL_PRESET.read_text().replace("    phase1_all_fix:\n", "    phase1_all_fix:\n      soft_tokenz: 8\n"))
    code, out, err = run_main(capsys, "--config", preset, "--run", run, "--log", log)
    assert code == 2 and out == ""
    assert message in err


def test_the_presets_rerun_the_preserved_runs_and_the_plan_as_written():
    from ablation.bridge.settings import resolve_runs, trained_run_of
    from ablation.config import load_schema

    config, phase1 = load_run(ORIGINAL_PRESET, "phase1_all_fix")
    runs = resolve_runs(config["bridge"], load_schema(), config["seed"])
    # Ablations B and C ran the same flags: one experiment, one translator; Phase 1 only echoed another decode_interval
    trained = trained_run_of(runs)
    assert trained["ablB_kl_only"] == trained["ablC_kl_prompt"] != trained["phase1_all_fix"]
    assert (phase1["soft_tokens"], phase1["prompt_mode"], phase1["final_weights"], phase1["train_prompt"]) == (-1, "soft_plus_text", "last", "eval")
    assert (phase1["decode_interval"], phase1["decode_loss_weight"], phase1["dit_variant"]) == (200, 0.0, "original")
    # the original decoded plain greedy to EOS or max_new_tokens; every preserved run's bridged answers too
    assert {(s["repetition_penalty"], s["stop_after_answer"]) for s in runs.values()} == {(1.0, False)}
    plan, two_a = load_run(REPOSITORY / "presets" / "latentwire-plan-original.yaml", "2a")
    sizes = {key: two_a[key] for key in ("translator", "soft_tokens", "depth", "heads", "bottleneck", "warmup_steps", "per_device_batch",
                                         "train_steps", "early_stop_patience", "lr", "seed")}  # fmt: skip
    assert sizes == {"translator": "cross", "soft_tokens": 32, "depth": 4, "heads": 12, "bottleneck": 768, "warmup_steps": 600,
                     "per_device_batch": 10, "train_steps": 3000, "early_stop_patience": 5, "lr": 1e-4, "seed": 1234}  # fmt: skip
    assert plan["bridge"]["eval"]["samples"] == 500 and two_a["cross_self_attention"] and two_a["cross_ffn"] == "swiglu_two_thirds"
    # as the preserved runs' script trained: eval mode, bf16 weights, its token layout
    assert (two_a["translator_mode_in_training"], two_a["translator_dtype"], two_a["token_layout"]) == ("eval", "bfloat16", "original")


def test_hotpotqa_is_the_same_as_the_original_ran_it_only_in_gsm8k_prompts_and_scoring(tmp_path):
    original = parse_config_block(write_log(tmp_path / "train.log", {"dataset": "hotpotqa", "eval_samples": "500"}))

    def rows(preset: Path) -> dict:
        config, settings = load_run(preset, "3a")
        return {row["key"]: row for row in parity_rows(original, settings, config)}

    plan = rows(REPOSITORY / "presets" / "latentwire-plan-original.yaml")
    assert plan["dataset"]["verdict"] == SAME and plan["eval_samples"]["verdict"] == SAME
    ours = rows(REPOSITORY / "presets" / "latentwire-paper.yaml")["dataset"]  # our design: paragraphs, EM/F1
    assert ours["verdict"] == DIFFERS and ours["ours"] == "hotpotqa (prompts: hotpotqa, scoring: hotpotqa)"
