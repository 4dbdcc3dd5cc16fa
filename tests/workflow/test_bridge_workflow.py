"""The bridge study through real Snakemake executions of the micro bridge config."""

from __future__ import annotations

import json
import zipfile

import pytest
import yaml

from tests.helpers import REPOSITORY, planned_jobs, snakemake
from tests.workflow.slurm import preset_dry_run, sbatch_flags

MICRO_BRIDGE = REPOSITORY / "tests" / "configs" / "micro_bridge.yaml"
TINY_DEFAULT = REPOSITORY / "config.yaml"

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def bridge_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("micro_bridge_run")
    result = snakemake(workdir, MICRO_BRIDGE)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_the_micro_bridge_config_runs_end_to_end(bridge_run):
    results = bridge_run / "results"
    for lm, model_type in (("bridge_model", "llama"), ("bridge_source_model", "mistral")):
        assert json.loads((results / "world" / "bridge" / lm / "config.json").read_text())["model_type"] == model_type
    assert not (results / "world" / "base_model").exists()  # the bridge has its own source
    for model in ("mistral_tiny", "llama_tiny"):
        for dataset in ("gsm8k", "hotpotqa"):
            metrics = json.loads((results / "bridge" / "baselines" / model / dataset / "metrics.json").read_text())
            assert metrics["samples"] == 8 and metrics["provenance"]["model"]["local_dir_sha256"]
    # micro_same has micro_cross's settings: trained once, under micro_cross's name
    assert sorted(path.name for path in (results / "bridge" / "runs").iterdir()) == ["micro_cross", "micro_dit_hotpot"]
    summary = json.loads((results / "bridge" / "runs" / "micro_dit_hotpot" / "summary.json").read_text())
    assert summary["dataset"] == "hotpotqa" and summary["settings"]["translator"] == "dit"
    assert summary["settings"]["prompt_mode"] == "soft_only" and summary["settings"]["prompt_mode_forced"]
    assert summary["steps_evaluated"] == [0, 2, 4, "final"] and "final_bridged_f1" in summary
    baseline = json.loads((results / "bridge" / "baselines" / "llama_tiny" / "hotpotqa" / "metrics.json").read_text())
    assert summary["target_acc"] == baseline["accuracy"]
    assert summary["target_soft_slot_acc"] == baseline["soft_slot_accuracy"] and summary["majority_answer"]
    source_baseline = json.loads((results / "bridge" / "baselines" / "mistral_tiny" / "hotpotqa" / "metrics.json").read_text())
    layer = summary["source_legibility"]["layer"]
    assert summary["source_legibility"] == {"layer": layer, **source_baseline["legibility"][str(layer)]}
    assert (bridge_run / "logs" / "train_bridge" / "micro_cross.log").stat().st_size > 0
    # one source-state cache per key (GSM8K and HotpotQA), each read by its run instead of the source
    caches = sorted((results / "bridge" / "source_states").iterdir())
    assert len(caches) == 2 and all(json.loads((cache / "index.json").read_text())["cached"] for cache in caches)
    # and one KL-baseline cache per key, read instead of the target's baseline forward
    kl_caches = sorted((results / "bridge" / "kl_baselines").iterdir())
    assert len(kl_caches) == 2 and all(json.loads((cache / "index.json").read_text())["cached"] for cache in kl_caches)
    for run in ("micro_cross", "micro_dit_hotpot"):
        log = (bridge_run / "logs" / "train_bridge" / f"{run}.log").read_text()
        assert "reading the source's states from" in log and "reading the KL baselines from" in log and "is not loaded" in log
    # Ablation 4 of bridge.inference.run (default: the first run), whole micro test split, all five baselines
    inference = json.loads((results / "bridge" / "inference" / "micro_cross" / "summary.json").read_text())
    assert inference["samples"] == 16 and len(inference["baselines"]) == 5 and len(inference["comparisons"]) == 4


def test_a_rerun_has_nothing_to_do(bridge_run):
    result = snakemake(bridge_run, MICRO_BRIDGE, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


def test_the_bridge_report_shows_the_runs_in_their_roles(bridge_run):
    import pandas as pd

    from ablation.bridge.report import VERDICTS
    from ablation.layout import bridge_report_files

    results = bridge_run / "results"
    files = bridge_report_files(results, ["stability", "compression", "dataset", "components", "direction"])
    assert all(path.stat().st_size > 0 for path in files["tables"] + files["page"])
    assert all(path.stat().st_size > 10_000 for path in files["figures"])
    tables = results / "bridge" / "tables"
    runs = pd.read_csv(tables / "bridge_runs.csv", keep_default_na=False, dtype=str).set_index("role")
    assert (runs.loc["1a", "run"], runs.loc["1a", "origin"], runs.loc["1a", "note"]) == ("micro_cross", "trained", "")
    assert (runs.loc["2c", "run"], runs.loc["2c", "note"]) == ("micro_same", "reuses 1a")
    assert runs.loc["3a", "dataset"] == "hotpotqa" and runs.loc["1b", "origin"] == "not yet run"
    trained = json.loads((results / "bridge" / "runs" / "micro_cross" / "summary.json").read_text())
    assert float(runs.loc["2c", "final"]) == trained["final_bridged_acc"] and int(runs.loc["1a", "peak step"]) == trained["peak_step"]
    assert float(runs.loc["1a", "question in soft slot"]) == pytest.approx(trained["target_soft_slot_acc"], abs=5e-4)
    assert float(runs.loc["1a", "majority floor"]) == pytest.approx(trained["majority_acc"], abs=5e-4)
    assert float(runs.loc["1a", "soft-token spread"]) == pytest.approx(trained["final_soft_token_spread"], abs=5e-4)
    legibility = trained["source_legibility"]
    assert float(runs.loc["1a", "source legibility"]) == pytest.approx(legibility["tokens"], abs=5e-4)
    assert float(runs.loc["1a", "source number legibility"]) == pytest.approx(legibility["number_tokens"], abs=5e-4)
    claims = pd.read_csv(tables / "bridge_claims.csv").set_index("claim")
    assert len(claims) == 6 and set(claims["verdict"]) <= set(VERDICTS)
    assert claims.loc["Compression-quality trade-off", "verdict"] == "not yet run"  # only 2c of the K sweep ran
    assert set(pd.read_csv(tables / "bridge_inference.csv")["status"]) == {"measured"}
    page = (results / "bridge" / "RESULTS.md").read_text()
    assert "## Claims" in page and "`2c`: `micro_same`" in page and "](figures/bridge_accuracy.png)" in page


def test_paper_and_the_report_bundle_take_the_bridge_tables_and_figures(bridge_run):
    paper = snakemake(bridge_run, MICRO_BRIDGE, "paper")
    assert paper.returncode == 0, paper.stderr[-4000:]
    assert sorted(path.name for path in (bridge_run / "paper" / "figures").iterdir()) == [
        "bridge_accuracy.pdf", "bridge_compression.pdf", "bridge_inference.pdf"
    ]
    assert {"bridge_runs.tex", "bridge_claims.tex", "bridge_ablation_stability.tex"} <= {path.name for path in (bridge_run / "paper" / "tables").iterdir()}
    bundle = snakemake(bridge_run, MICRO_BRIDGE, "--report", "report.zip")
    assert bundle.returncode == 0, bundle.stderr[-4000:]
    with zipfile.ZipFile(bridge_run / "report.zip") as archive:
        names = archive.namelist()
    for expected in ("bridge_accuracy.png", "bridge_compression.pdf", "bridge_claims.tex", "bridge_runs.csv", "RESULTS.md"):
        assert any(name.endswith(expected) for name in names), expected


def test_one_study_as_a_target_plans_only_its_jobs(tmp_path):
    bridge_only = planned_jobs(snakemake(tmp_path, TINY_DEFAULT, "-n", "bridge"))
    assert not {"eval_model", "finetune", "report_results"} & set(bridge_only)
    # the bridge's own source and target, not the prefill study's model
    assert bridge_only["train_bridge"] >= 1 and bridge_only["pretrain_bridge_model"] == 2 and "pretrain_base_model" not in bridge_only
    prefill_only = planned_jobs(snakemake(tmp_path, TINY_DEFAULT, "-n", "prefill_mask"))
    assert not {name for name in prefill_only if "bridge" in name}
    everything = planned_jobs(snakemake(tmp_path, TINY_DEFAULT, "-n"))
    assert everything["train_bridge"] == bridge_only["train_bridge"] and everything["finetune"] == prefill_only["finetune"]


def test_the_latentwire_preset_requests_its_gpus_from_slurm(tmp_path):
    preset_path = REPOSITORY / "presets" / "latentwire-gsm8k.yaml"
    preset = yaml.safe_load(preset_path.read_text())
    jobs = preset_dry_run(tmp_path, preset_path)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    # two runs; both read Mistral and Llama on GSM8K, so two baselines serve both directions
    assert len(by_rule["train_bridge"]) == 2 and len(by_rule["eval_bridge_baseline"]) == 2
    assert len(by_rule["prefetch"]) == 1 and not {"eval_model", "finetune", "pretrain_base_model"} & set(by_rule)
    train = sbatch_flags(by_rule["train_bridge"][0]["resources"], preset["resources"]["bridge_train"]["threads"])
    assert "--gpus=h100:4" in train and "--mem 256000" in train and "-t 360" in train
    baseline = sbatch_flags(by_rule["eval_bridge_baseline"][0]["resources"], preset["resources"]["bridge_eval"]["threads"])
    assert "--gpus=h100:1" in baseline and "-t 60" in baseline


def test_a_run_that_sets_its_processes_requests_one_gpu_each(tmp_path):
    """The original preset's phase2_swap_soft_only ran on one H100 (its train.log's [Rank 0/1]), the others on four."""
    jobs = [job for job in preset_dry_run(tmp_path, REPOSITORY / "presets" / "latentwire-original.yaml") if job["rule"] == "train_bridge"]
    gpus = {job["wildcards"].removeprefix("bridge_run="): job["resources"]["gpu"] for job in jobs}
    assert gpus == {"phase1_all_fix": "4", "ablB_kl_only": "4", "phase2_swap": "4", "phase2_swap_soft_only": "1"}


@pytest.mark.workflow
def test_the_plan_preset_plans_its_runs_with_hotpotqa_as_the_original_ran_it(tmp_path):
    import yaml

    preset_path = REPOSITORY / "presets" / "latentwire-plan-original.yaml"
    preset = yaml.safe_load(preset_path.read_text())
    assert preset["bridge"]["datasets"]["hotpotqa"]["prompts"] == preset["bridge"]["datasets"]["hotpotqa"]["scoring"] == "gsm8k"
    jobs = planned_jobs(snakemake(tmp_path, preset_path, "--dry-run"))
    assert jobs["train_bridge"] == len(preset["bridge"]["runs"]) - 1  # 2c reuses 1a
    assert jobs["eval_bridge_baseline"] == 4 and jobs["report_bridge"] == 1  # both models on both tasks


@pytest.mark.parametrize("prompts, cached_keys", [("task_prompt_runs", 2), ("all", 3)])
def test_the_prompts_setting_picks_which_runs_read_a_source_state_cache(tmp_path, prompts, cached_keys):
    """A run training on the evaluation prompt gets no cache job under the default, and the dry run says so."""
    config = yaml.safe_load(MICRO_BRIDGE.read_text())
    config["bridge"]["source_state_cache"]["prompts"] = prompts
    config["bridge"]["runs"]["micro_eval_prompt"] = {"base": "micro_cross", "train_prompt": "eval"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, tmp_path / "config.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result)["bridge_source_states"] == cached_keys  # gsm8k and hotpotqa on the task prompt (+ the eval prompt)
    output = result.stdout + result.stderr
    # the micro world's sizes are not estimated: the plan is printed when it leaves a run on the fly
    left_out = prompts == "task_prompt_runs"
    assert ("Bridge caches (bridge.source_state_cache:" in output) == left_out
    assert ("micro_eval_prompt" in output) and (("trains on the evaluation prompt" in output) == left_out)
