"""profiles/vastai, checked without renting anything: dry runs of the micro config and the real
preset, and the plugin's own offer query for the preset's fine-tune request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
PROFILE = REPOSITORY / "profiles" / "vastai"
MICRO_CONFIG = REPOSITORY / "tests" / "configs" / "micro.yaml"
PRESET = REPOSITORY / "presets" / "ministral-3b.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

pytestmark = pytest.mark.workflow


def dry_run(workdir: Path, configfile: Path, *args: str) -> str:
    """`snakemake --profile profiles/vastai -n`, with no API key anywhere in the environment."""
    environment = {name: value for name, value in os.environ.items() if "VAST" not in name.upper()}
    environment.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPOSITORY / "Snakefile"), "--directory", str(workdir), "--configfile",
         str(configfile), "--profile", str(PROFILE), "--dry-run", *args],
        capture_output=True, text=True, env=environment, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned(output: str) -> dict[str, list[dict]]:
    """rule -> the resources of each of its planned jobs (numbers as int, unknown sizes left out)."""
    jobs: dict[str, list[dict]] = {}
    rule = None
    for line in output.splitlines():
        match = re.fullmatch(r"(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
        elif rule and line.startswith("    resources: "):
            resources = {}
            for item in line.split(": ", 1)[1].split(", "):
                name, value = item.split("=", 1)
                if "<TBD>" not in value:
                    resources[name] = int(value) if value.isdigit() else value
            jobs.setdefault(rule, []).append(resources)
            rule = None
    return jobs


def profile_settings(**overrides):
    """The plugin's ExecutorSettings as profiles/vastai/config.yaml sets them."""
    from snakemake_executor_plugin_vastai import ExecutorSettings

    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    settings = {key.removeprefix("vastai-").replace("-", "_"): value
                for key, value in profile.items() if key.startswith("vastai-")}
    return ExecutorSettings(**{**settings, **overrides})


def test_profile_holds_no_api_key_and_names_a_price_cap_and_a_gpu():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "vastai"
    assert not any("api" in key for key in profile), "the API key comes from VAST_API_KEY, never from the profile"
    settings = profile_settings()
    assert settings.api_key is None and settings.max_price > 0 and settings.gpu_name
    assert re.fullmatch(r"[A-Z0-9]+(_[A-Z0-9]+)*", settings.gpu_name), "Vast spelling, e.g. A100_SXM4"


def test_micro_config_dry_runs_with_the_vastai_profile(tmp_path):
    jobs = planned(dry_run(tmp_path, MICRO_CONFIG))
    assert {"build_world_data", "train_tokenizer", "pretrain_base_model", "eval_model", "finetune"} <= set(jobs)
    assert len(jobs["eval_model"]) == 3 + 2 * 3 and len(jobs["finetune"]) == 2


def test_preset_dry_runs_with_the_vastai_profile(tmp_path):
    preset = yaml.safe_load(PRESET.read_text())
    jobs = planned(dry_run(tmp_path, PRESET))
    assert len(jobs["finetune"]) == len(preset["finetune"]["runs"])
    for rule, kind in (("eval_model", "eval"), ("finetune", "finetune")):
        for resources in jobs[rule]:
            assert resources["gpu"] == preset["resources"][kind]["gpus"]
            assert resources["mem_mb"] == preset["resources"][kind]["mem_mb"]


def test_preset_finetune_request_becomes_the_expected_vast_offer_query(tmp_path):
    """The plugin's build_offer_query on the resources Snakemake gives a preset fine-tune job."""
    from snakemake_executor_plugin_vastai import build_offer_query, required_disk_gb

    preset = yaml.safe_load(PRESET.read_text())
    preset["resources"]["finetune"]["gpu_model"] = "H100_SXM"
    config = tmp_path / "preset-h100.yaml"
    config.write_text(yaml.safe_dump(preset))
    jobs = planned(dry_run(tmp_path, config))
    settings = profile_settings()
    wanted = preset["resources"]["finetune"]

    finetune = jobs["finetune"][0]
    query = build_offer_query(settings, finetune, wanted["threads"])
    assert query.split() == [
        f"num_gpus={wanted['gpus']}",
        "gpu_name=H100_SXM",
        f"cpu_cores_effective>={wanted['threads']}",
        f"cpu_ram>={wanted['mem_mb'] / 1000:g}",
        f"disk_space>={settings.disk:g}",
        f"reliability>{settings.reliability:g}",
        "datacenter=true",
        f"dph_total<={settings.max_price:g}",
        *settings.search_query.split(),
    ]
    assert query.startswith("num_gpus=1 gpu_name=H100_SXM cpu_cores_effective>=8 cpu_ram>=96 ")
    assert required_disk_gb(settings, finetune) == settings.disk

    # evals name no GPU model: the profile's default GPU, their own memory
    evaluation = jobs["eval_model"][0]
    query = build_offer_query(settings, evaluation, preset["resources"]["eval"]["threads"])
    assert f"gpu_name={settings.gpu_name}" in query.split() and "cpu_ram>=64" in query.split()
