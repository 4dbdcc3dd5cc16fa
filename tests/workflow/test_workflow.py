"""Real Snakemake executions of the workflow: the micro config end to end, the real preset as a dry run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from ablation.code_version import library_code_sha256, library_modules
from ablation.layout import tuning_paths
from ablation.prefill.report.tuning import load_results
from ablation.prefill.tuning import choose_trial
from tests.helpers import PRESET, REPOSITORY, SNAKEMAKE, planned_jobs, snakemake

MICRO_CONFIG = REPOSITORY / "tests" / "configs" / "micro.yaml"

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("micro_run")
    result = snakemake(workdir, MICRO_CONFIG)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def write_config(path: Path, change) -> Path:
    config = yaml.safe_load(MICRO_CONFIG.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))
    return path


def test_micro_config_runs_end_to_end(micro_run):
    results = micro_run / "results"
    assert (results / "world" / "base_model" / "config.json").exists()
    assert (results / "world" / "base_model" / "model.safetensors").exists()
    assert (results / "world" / "tokenizer" / "tokenizer.json").exists()
    for mask in ("causal", "prefill_bidir", "full_bidir"):
        metrics = json.loads((results / "eval" / "base" / mask / "metrics.json").read_text())
        assert metrics["provenance"]["mask"] == mask
        assert metrics["task_set"] == "tiny" and len(metrics["tasks"]) == 5
        assert (micro_run / "logs" / "eval_model" / "base" / f"{mask}.log").stat().st_size > 0
    for rule in ("build_world_data", "train_tokenizer", "pretrain_base_model"):
        assert (micro_run / "logs" / rule / "world.log").exists()
    for run, train_mask in (("micro_causal", "causal"), ("micro_prefix_lm", "prefill_bidir")):
        summary = json.loads((results / "finetune" / run / "summary.json").read_text())
        assert summary["train_mask"] == train_mask and summary["steps_run"] == 6
        assert (results / "finetune" / run / "final" / "model.safetensors").exists()
        for mask in ("prefill_bidir", "causal", "full_bidir"):  # full_bidir: eval.finetune_full_bidir, on by default
            assert json.loads((results / "eval" / run / mask / "metrics.json").read_text())["provenance"]["mask"] == mask
    for name in ("recovery_ratio", "eval_loss"):
        assert (results / f"{name}.pdf").stat().st_size > 1000 and (results / f"{name}.png").stat().st_size > 1000
    for name in ("stages", "derived", "per_task", "stage5"):
        for fmt in ("csv", "md", "tex"):
            assert (results / "tables" / f"{name}.{fmt}").stat().st_size > 0
    page = (results / "RESULTS.md").read_text()
    assert "micro_prefix_lm" in page and "recovery" in page.lower()


def test_every_result_records_its_hardware_library_code_and_lm_evals_record(micro_run):
    results = micro_run / "results"
    scripts = REPOSITORY / "workflow" / "scripts"
    stamped = {path: "prefill/eval_model.py" for path in results.glob("eval/*/*/metrics.json")}
    stamped.update({path: "prefill/finetune.py" for path in results.glob("finetune/*/summary.json")})
    assert len(stamped) == 11  # 9 evaluations (Stage 4 under full_bidir too) and 2 fine-tunes
    for path, script in stamped.items():
        provenance = json.loads(path.read_text())["provenance"]
        assert provenance["library_code_sha256"] == library_code_sha256(scripts / script), path
        hardware = provenance["hardware"]
        assert hardware["cpu_count"] >= 1 and hardware["cpu_model"] and hardware["torch_build"]["version"]
        assert {"gpu_name", "gpu_count", "gpu_memory_bytes", "gpu_driver", "cuda", "cudnn"} <= hardware.keys()
        if path.name == "metrics.json":
            record = provenance["lm_eval"]
            assert sorted(record["task_hashes"]) == sorted(json.loads(path.read_text())["tasks"])
            assert all(len(digest) == 64 for digest in record["task_hashes"].values())
            assert record["task_versions"] and record["lm_eval_version"] and record["pretty_env_info"]


def test_a_finished_run_has_nothing_left_to_do(micro_run):
    result = snakemake(micro_run, MICRO_CONFIG, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def params_changed_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> count of the dry run's jobs that rerun because their params (library_code) changed."""
    jobs, rule = {}, None
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("rule ") and line.endswith(":"):
            rule = line.removeprefix("rule ").removesuffix(":")
        elif line.strip().startswith("reason:") and "Params have changed" in line:
            jobs[rule] = jobs.get(rule, 0) + 1
    return jobs


def test_a_library_change_reruns_exactly_the_jobs_that_import_it(micro_run, tmp_path):
    """A copy of the workflow sees the micro run as finished; editing one of its modules reruns the
    jobs whose scripts import it (and, through their outputs, what follows), a comment nothing."""
    copy = tmp_path / "workflow_copy"
    copy.mkdir()
    for name in ("Snakefile", "rules", "workflow", "envs", "ablation"):
        source = REPOSITORY / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy / name)
    assert "Nothing to be done" in snakemake(micro_run, MICRO_CONFIG, "--dry-run", repository=copy).stdout

    tables = copy / "ablation" / "prefill" / "report" / "tables.py"
    tables.write_text("# a comment changes no code\n" + tables.read_text())
    assert "Nothing to be done" in snakemake(micro_run, MICRO_CONFIG, "--dry-run", repository=copy).stdout

    scoring = copy / "ablation" / "prefill" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\nSCORING_REVISION = 2\n")
    result = snakemake(micro_run, MICRO_CONFIG, "--dry-run", repository=copy)
    scripts = {rule: f"{group}/{script}.py" for group, rule, script in (("world", "build_world_data", "build_world_data"), ("world", "train_tokenizer", "train_tokenizer"),
                                                                          ("world", "pretrain_base_model", "pretrain_model"), ("prefill", "finetune", "finetune"),
                                                                          ("prefill", "report_results", "report_results"))}
    importers = [rule for rule, script in scripts.items() if "ablation.prefill.scoring" in library_modules(copy / "workflow" / "scripts" / script, copy / "ablation")]
    assert params_changed_jobs(result) == {"eval_model": 9, **{rule: planned_jobs(result)[rule] for rule in importers}}
    assert "eval_model" in planned_jobs(result) and "report_results" in planned_jobs(result)


def test_deleting_a_stage4_metrics_file_reruns_only_that_eval_and_the_report(micro_run):
    (micro_run / "results" / "eval" / "micro_prefix_lm" / "prefill_bidir" / "metrics.json").unlink()
    assert planned_jobs(snakemake(micro_run, MICRO_CONFIG, "--dry-run")) == {"eval_model": 1, "report_results": 1, "all": 1}
    rebuilt = snakemake(micro_run, MICRO_CONFIG)
    assert rebuilt.returncode == 0, rebuilt.stderr[-4000:]
    assert "Nothing to be done" in snakemake(micro_run, MICRO_CONFIG, "--dry-run").stdout


def test_a_corrupt_metrics_file_is_named_the_report_kept_and_forcerun_rebuilds_it(micro_run):
    metrics = Path("results") / "eval" / "base" / "causal" / "metrics.json"
    page = micro_run / "results" / "RESULTS.md"
    before = page.read_text()
    text = (micro_run / metrics).read_text()
    (micro_run / metrics).write_text(text[: len(text) // 2])  # a copy cut short
    failed = snakemake(micro_run, MICRO_CONFIG)
    output = failed.stdout + failed.stderr + (micro_run / "logs" / "report_results" / "report.log").read_text()
    assert failed.returncode != 0
    assert f"{metrics} is corrupt (line" in output and f"snakemake --forcerun {metrics}" in output
    assert page.read_text() == before  # the failed report left the previous one in place
    rebuilt = snakemake(micro_run, MICRO_CONFIG, "--forcerun", str(metrics))
    assert rebuilt.returncode == 0, rebuilt.stderr[-4000:]
    assert json.loads((micro_run / metrics).read_text())["macro_acc"] is not None
    assert "Nothing to be done" in snakemake(micro_run, MICRO_CONFIG, "--dry-run").stdout


def test_changing_an_eval_setting_reruns_evals_but_no_fine_tune(micro_run, tmp_path):
    changed = write_config(tmp_path / "limit.yaml", lambda config: config["eval"].update(limit=5))
    assert planned_jobs(snakemake(micro_run, changed, "--dry-run")) == {"eval_model": 9, "report_results": 1, "all": 1}


def test_a_failed_fine_tune_leaves_nothing_that_looks_complete(micro_run, tmp_path):
    def add_diverging_run(config):
        config["finetune"]["runs"]["diverging"] = {"train_mask": "causal", "learning_rate": 1.0e30}

    config = write_config(tmp_path / "diverging.yaml", add_diverging_run)
    target = "results/finetune/diverging/summary.json"  # targets are relative to the working directory
    run_dir = micro_run / "results" / "finetune" / "diverging"
    failed = snakemake(micro_run, config, target)
    assert failed.returncode != 0
    assert "NonFiniteLossError" in (micro_run / "logs" / "finetune" / "diverging.log").read_text()
    assert not (run_dir / "final").exists() and not (run_dir / "summary.json").exists()
    assert planned_jobs(snakemake(micro_run, config, "--dry-run", target)) == {"finetune": 1}


def test_the_paper_target_copies_latex_tables_and_pdf_figures(micro_run):
    result = snakemake(micro_run, MICRO_CONFIG, "paper")
    assert result.returncode == 0, result.stderr[-4000:]
    assert sorted(path.name for path in (micro_run / "paper" / "tables").iterdir()) == [
        "derived.tex", "per_task.tex", "stage5.tex", "stages.tex"
    ]
    assert sorted(path.name for path in (micro_run / "paper" / "figures").iterdir()) == ["eval_loss.pdf", "recovery_ratio.pdf"]


def test_the_report_bundles_every_figure_and_table(micro_run):
    result = snakemake(micro_run, MICRO_CONFIG, "--report", "report.zip")
    assert result.returncode == 0, result.stderr[-4000:]
    with zipfile.ZipFile(micro_run / "report.zip") as bundle:
        names = bundle.namelist()
    for expected in ("recovery_ratio.pdf", "recovery_ratio.png", "stages.tex", "RESULTS.md"):
        assert any(name.endswith(expected) for name in names), expected


def test_the_cost_plan_reads_a_finished_runs_loss_history(micro_run, tmp_path):
    def add_planner(config):
        config["planner"] = {"run": "micro_causal", "measured_on": {"gpu": "RTX_3090"}, "steps": 6000,
                             "offers": [{"name": "A100", "gpu": "A100_SXM4", "gpus": 1, "price_per_hour": 0.7411}]}

    result = snakemake(micro_run, write_config(tmp_path / "planner.yaml", add_planner), "results/plan.md")
    assert result.returncode == 0, result.stderr[-4000:]
    plan = (micro_run / "results" / "plan.md").read_text()
    assert "6000 steps" in plan and "| A100 | 1x A100_SXM4 | 0.7411 |" in plan


def test_a_seed_sweep_builds_only_the_new_seeds_study_and_reports_both(micro_run, tmp_path):
    workdir = tmp_path / "sweep"
    shutil.copytree(micro_run, workdir, symlinks=True)
    sweep = write_config(tmp_path / "sweep.yaml", lambda config: config.update(seeds=[7, 8]))
    seed8 = {"build_world_data": 1, "train_tokenizer": 1, "pretrain_base_model": 1, "finetune": 2, "eval_model": 6}
    expected = {**{f"seed_8_{rule}": count for rule, count in seed8.items()}, "report_results": 1, "all": 1}
    assert planned_jobs(snakemake(workdir, sweep, "--dry-run")) == expected
    result = snakemake(workdir, sweep)
    assert result.returncode == 0, result.stderr[-4000:]

    results = workdir / "results"
    seed8_results = results / "seeds" / "8"
    assert (workdir / "logs" / "seeds" / "8" / "pretrain_base_model" / "world.log").exists()
    assert (results / "world" / "corpus.txt").read_text() != (seed8_results / "world" / "corpus.txt").read_text()
    table = {row["quantity"]: row for row in csv.DictReader((results / "tables" / "seed_sweep.csv").open())}
    for seed, study in ((7, results), (8, seed8_results)):
        stage1 = json.loads((study / "eval" / "base" / "causal" / "metrics.json").read_text())
        stage2 = json.loads((study / "eval" / "base" / "prefill_bidir" / "metrics.json").read_text())
        assert stage1["provenance"]["seed"] == seed
        drop = float(table["drop S1 − S2 (macro)"][f"seed {seed}"])
        assert drop == pytest.approx(stage1["macro_acc"] - stage2["macro_acc"])
    assert table["drop S1 − S2 (macro)"]["n"] == "2"
    assert "### 3. Do the answers hold across seeds?" in (results / "RESULTS.md").read_text()
    assert (results / "seed_sweep.pdf").stat().st_size > 1000
    assert "Nothing to be done" in snakemake(workdir, sweep, "--dry-run").stdout


def test_tuning_chooses_the_fine_tune_settings_on_the_dev_split_outside_the_main_dag(micro_run, tmp_path):
    workdir = tmp_path / "tuning"
    shutil.copytree(micro_run, workdir, symlinks=True)
    grid = {"learning_rate": [1.0e-3, 3.0e-3], "max_steps": [4], "replay_fraction": [0.5]}
    tuning = write_config(
        tmp_path / "tuning.yaml", lambda config: config["finetune"].update(tuning={"dev_examples_per_task": 8, "grid": grid})
    )
    assert "Nothing to be done" in snakemake(workdir, tuning, "--dry-run").stdout  # the main command never tunes
    planned = planned_jobs(snakemake(workdir, tuning, "--dry-run", "tune_finetune"))
    assert planned == {"build_dev_tasks": 1, "tuning_finetune": 4, "tuning_eval_base": 2, "tuning_eval_trial": 8, "tune_finetune": 1}
    result = snakemake(workdir, tuning, "tune_finetune")
    assert result.returncode == 0, result.stderr[-4000:]

    results = workdir / "results"
    trials = {"lr0.001_steps4_replay0.5": 1.0e-3, "lr0.003_steps4_replay0.5": 3.0e-3}
    for trial, learning_rate in trials.items():
        for run in ("micro_causal", "micro_prefix_lm"):
            summary = json.loads((results / "tuning" / trial / run / "summary.json").read_text())
            assert summary["settings"]["learning_rate"] == learning_rate and summary["steps_run"] == 4
            assert summary["settings"]["replay_fraction"] == 0.5
    # dev evaluations score the development items, none of the evaluation ones
    dev_item = json.loads((results / "world" / "tasks_dev" / "tiny_arc_easy.jsonl").read_text().splitlines()[0])
    eval_queries = {json.loads(line)["query"] for line in (results / "world" / "tasks" / "tiny_arc_easy.jsonl").read_text().splitlines()}
    scored = [json.loads(line) for line in (results / "tuning" / "base" / "causal" / "samples.jsonl").read_text().splitlines()]
    contexts = {row["arguments"][0][0] for row in scored}
    assert dev_item["query"] in contexts and not contexts & eval_queries
    # the choice is the criterion applied to the dev evaluations on disk
    choice = json.loads((results / "tuning" / "finetune_choice.json").read_text())
    base, trial_results = load_results(
        tuning_paths(results, trials, ("micro_causal", "micro_prefix_lm")),
        {name: {"learning_rate": lr, "max_steps": 4, "replay_fraction": 0.5} for name, lr in trials.items()},
        ("micro_causal", "micro_prefix_lm"),
    )
    assert choice["chosen"] == choose_trial(trial_results, base["causal"], 0.02).result.trial
    assert choice["provenance"]["seed"] == 7
    assert (results / "tuning" / "finetune_grid.md").read_text().count("lr0.00") == 2
    assert "Nothing to be done" in snakemake(workdir, tuning, "--dry-run", "tune_finetune").stdout


def test_tuning_a_config_without_the_tiny_tasks_is_refused_naming_the_key(tmp_path):
    result = snakemake(tmp_path, PRESET, "--dry-run", "tune_finetune")
    assert result.returncode != 0
    assert "needs eval.task_set 'tiny' (got 'original')" in result.stdout + result.stderr


def test_the_real_preset_validates_and_plans_its_jobs(tmp_path):
    result = snakemake(tmp_path, PRESET, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "eval_model" in output and "results/ministral-3b/eval/base/prefill_bidir/metrics.json" in output
    assert planned_jobs(result) == {"prefetch": 1, "eval_model": 18, "finetune": 5, "report_results": 1, "all": 1}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda config: config["eval"].update(maks=["causal"]), "'eval.maks'"),
        (lambda config: config["eval"].update(batch_size="big"), "'eval.batch_size'"),
        (lambda config: config["eval"].update(masks=["causal", "no_mask"]), "'eval.masks[1]'"),
        (lambda config: config["model"].update(id="/nonexistent/model"), "'model.id': the local model directory /nonexistent/model does not exist"),
    ],
    ids=["misspelled-key", "wrong-type", "unknown-mask", "missing-local-model"],
)
def test_a_bad_config_stops_before_any_job(tmp_path, change, named):
    config = yaml.safe_load(MICRO_CONFIG.read_text())
    change(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in output
    assert not (tmp_path / "results").exists()


def test_a_command_line_setting_overrides_the_default_config_and_an_empty_file_is_refused(tmp_path):
    shutil.copy(REPOSITORY / "config.yaml", tmp_path / "config.yaml")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    plan = subprocess.run([str(SNAKEMAKE), "-s", str(REPOSITORY / "Snakefile"), "--cores", "1", "--dry-run", "--config", "seed=1234"],
                          cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=600)
    output = plan.stdout + plan.stderr
    assert plan.returncode == 0, output[-4000:]
    assert "Config file config.yaml is extended by additional config" in output
    assert planned_jobs(plan)["train_bridge"] >= 1  # the default's bridge study, not the schema's prefill-only defaults

    (tmp_path / "empty.yaml").write_text("{}\n")
    refused = snakemake(tmp_path, tmp_path / "empty.yaml", "--dry-run")
    assert refused.returncode != 0 and f"config file {tmp_path / 'empty.yaml'} is empty" in refused.stdout + refused.stderr


def test_building_the_dag_imports_no_deep_learning_library():
    """Every ``ablation`` module the Snakefile imports stays light: a no-op rerun must not pay for torch."""
    modules = sorted({
        line.split()[1]
        for path in [REPOSITORY / "Snakefile", *(REPOSITORY / "rules").rglob("*.smk")]
        for line in path.read_text().splitlines()
        if line.strip().startswith(("from ablation", "import ablation"))
    })  # fmt: skip
    assert {"ablation.config", "ablation.references", "ablation.prefill", "ablation.bridge", "ablation.bridge.settings"} <= set(modules)
    code = "import sys, importlib\n" + "".join(f"importlib.import_module({name!r})\n" for name in modules)
    code += "print(sorted(name for name in ('torch', 'transformers', 'datasets', 'lm_eval') if name in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPOSITORY, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
