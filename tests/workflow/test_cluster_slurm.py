"""profiles/slurm: the real preset's DAG and sbatch requests (no cluster needed), and the micro
config's Stage 1/2 evals and a fine-tune run through a real one-node SLURM cluster on this host
(cluster/start-local-slurm.sh), compared with a local run of the same targets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.workflow.slurm import PRESET, PROFILE, preset_dry_run, sbatch_flags, snakemake

REPOSITORY = Path(__file__).resolve().parents[2]
MICRO_CONFIG = REPOSITORY / "tests" / "configs" / "micro.yaml"
START = REPOSITORY / "cluster" / "start-local-slurm.sh"
STOP = REPOSITORY / "cluster" / "stop-local-slurm.sh"

TARGETS = (
    "results/eval/base/causal/metrics.json",
    "results/eval/base/prefill_bidir/metrics.json",
    "results/finetune/micro_causal/summary.json",
)
# SLURM log directory of each job (relative to .snakemake/slurm_logs) -> whether it asks for a GPU
SLURM_JOBS = {
    "rule_build_world_data": False,
    "rule_train_tokenizer": False,
    "rule_pretrain_base_model": False,
    "rule_eval_model/base_causal": True,
    "rule_eval_model/base_prefill_bidir": True,
    "rule_finetune/micro_causal": True,
}

pytestmark = pytest.mark.workflow


# --- the real preset, no cluster -----------------------------------------------------------------


def test_preset_dag_dry_runs_with_the_slurm_profile_and_each_gpu_job_carries_its_request(tmp_path):
    preset = yaml.safe_load(PRESET.read_text())
    jobs = preset_dry_run(tmp_path)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    masks = preset["eval"]["masks"]
    assert len(by_rule["eval_model"]) == len(masks) + 3 * len(preset["finetune"]["runs"])  # prefill_bidir, causal, full_bidir
    assert len(by_rule["finetune"]) == len(preset["finetune"]["runs"])
    for rule, kind in (("eval_model", "eval"), ("finetune", "finetune")):
        wanted = preset["resources"][kind]
        for job in by_rule[rule]:
            resources = job["resources"]
            assert resources["gpu"] == str(wanted["gpus"]) == "1", job
            assert resources["mem_mb"] == str(wanted["mem_mb"]), job
            assert resources["runtime"] == str(wanted["runtime"]), job
            assert "slurm_partition" not in resources and "gpu_model" not in resources, job
    # CPU-side rules get the profile's small defaults
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    for job in by_rule["prefetch"]:
        assert job["resources"]["mem_mb"] == str(profile["default-resources"]["mem_mb"])
        assert "gpu" not in job["resources"]


def test_slurm_plugin_turns_the_preset_requests_into_gpu_sbatch_flags(tmp_path):
    preset = yaml.safe_load(PRESET.read_text())
    jobs = {job["rule"]: job for job in preset_dry_run(tmp_path)}
    finetune = sbatch_flags(jobs["finetune"]["resources"], preset["resources"]["finetune"]["threads"])
    assert "--gpus=1" in finetune and "--mem 96000" in finetune and "-t 1440" in finetune
    assert "--cpus-per-task=8" in finetune
    evaluation = sbatch_flags(jobs["eval_model"]["resources"], preset["resources"]["eval"]["threads"])
    assert "--gpus=1" in evaluation and "--mem 64000" in evaluation and "-t 120" in evaluation


def test_site_settings_in_the_config_reach_sbatch(tmp_path):
    """Partition, account, constraint and GPU model of a site, set in a copy of the preset."""
    preset = yaml.safe_load(PRESET.read_text())
    preset["resources"]["finetune"].update(gpu_model="a100", slurm_partition="gpu", slurm_account="proj_42",
                                           constraint="a100_80g", gpus=2)
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(preset))
    jobs = preset_dry_run(tmp_path, site, "--set-resources", "eval_model:slurm_partition=gpu-short")
    finetune = next(job for job in jobs if job["rule"] == "finetune")
    assert finetune["resources"]["slurm_partition"] == "gpu"
    assert finetune["resources"]["slurm_account"] == "proj_42"
    flags = sbatch_flags(finetune["resources"], preset["resources"]["finetune"]["threads"])
    assert "--gpus=a100:2" in flags and "-C a100_80g" in flags
    evaluation = next(job for job in jobs if job["rule"] == "eval_model")
    assert evaluation["resources"]["slurm_partition"] == "gpu-short"


# --- a real SLURM cluster on this host -------------------------------------------------------------


@dataclass
class Cluster:
    state: Path
    env: dict

    def command(self, *args: str) -> str:
        return subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=30, check=True).stdout


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (slurmd launches the jobs); not running as root")
    installed = all(shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
                    for tool in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not installed and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is unavailable to install it")
    state = tmp_path_factory.mktemp("slurm")
    ctld_port, slurmd_port = free_ports(2)
    env = {**os.environ, "SLURMCTLD_PORT": str(ctld_port), "SLURMD_PORT": str(slurmd_port)}
    # a SIGTERM (CI timeout) unwinds like Ctrl-C, so the daemons are stopped below
    previous_handler = signal.signal(signal.SIGTERM, interrupt)
    try:
        started = subprocess.run(["bash", str(START), str(state)], env=env, capture_output=True, text=True, timeout=600)
        if started.returncode == 77:
            pytest.skip(started.stderr.strip().splitlines()[-1])
        assert started.returncode == 0, started.stdout + started.stderr
        print(started.stderr)
        yield Cluster(state, {
            "SLURM_CONF": str(state / "etc" / "slurm.conf"),
            "PATH": f"{state / 'bin'}:{os.environ['PATH']}:/usr/sbin:/sbin",
        })
    finally:
        stopped = subprocess.run(["bash", str(STOP), str(state)], capture_output=True, text=True, timeout=120)
        print(stopped.stderr)
        signal.signal(signal.SIGTERM, previous_handler)


def test_micro_evals_and_a_finetune_run_through_slurm_like_they_run_locally(slurm_cluster, tmp_path):
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    slurm_dir.mkdir()
    # The local reference runs alongside: the SLURM run spends most of its time between status checks.
    local = snakemake(local_dir, MICRO_CONFIG, "--cores", "2", *TARGETS, popen=True)
    try:
        result = snakemake(
            slurm_dir, MICRO_CONFIG, "--profile", str(PROFILE),
            # fake GPUs on the eval and fine-tune jobs; the fine-tune names the GPU model (gres type)
            "--set-resources", "eval_model:gpu=1", "finetune:gpu=1", "finetune:gpu_model=fake",
            "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "2", "--retries", "0",
            *TARGETS, env=slurm_cluster.env, timeout=900,
        )
        local_output, _ = local.communicate(timeout=600)
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
    log = result.stdout + result.stderr
    if result.returncode != 0:
        slurmctld = (slurm_cluster.state / "log" / "slurmctld.log").read_text()[-3000:]
        pytest.fail(f"snakemake --profile slurm failed:\n{log[-6000:]}\nslurmctld.log:\n{slurmctld}")
    assert local.returncode == 0, local_output[-4000:]

    # every job went through sbatch: the plugin's submission lines name their SLURM log files
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", log))
    logdir = slurm_dir / ".snakemake" / "slurm_logs"
    by_job = {str(Path(path).parent.relative_to(logdir)): job_id for job_id, path in submitted.items()}
    assert sorted(by_job) == sorted(SLURM_JOBS), log[-4000:]
    assert "Falling back to 'sacct'" not in log
    for path in submitted.values():
        assert "steps (100%) done" in Path(path).read_text()

    # slurmctld still holds the finished jobs (MinJobAge): completed, with the requested GPUs
    records = {}
    for line in slurm_cluster.command("scontrol", "show", "job", "--oneliner").splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[fields["JobId"]] = fields
    gpu_lines = (slurm_cluster.state / "log" / "task-gpus.log").read_text().splitlines()
    for job_dir, job_id in by_job.items():
        record = records[job_id]
        assert record["JobState"] == "COMPLETED", record
        if SLURM_JOBS[job_dir]:
            assert record["TresPerJob"] == ("gres:gpu:fake:1" if "finetune" in job_dir else "gres:gpu:1"), record
            assert record["NumCPUs"] == "2"
        else:
            assert record.get("TresPerJob", "") in ("", "(null)"), record
        # the job's tasks saw the GPU binding SLURM gave them (recorded by the cluster's TaskProlog)
        seen = {line.split()[1]: line for line in gpu_lines if line.startswith(f"job={job_id} ")}
        assert set(seen) == {"step=batch", "step=0"}, gpu_lines
        for line in seen.values():
            assert ("cuda_visible_devices=unset" not in line) == SLURM_JOBS[job_dir], line

    # same numbers as the local run
    for mask in ("causal", "prefill_bidir"):
        on_slurm, here = (json.loads((root / f"results/eval/base/{mask}/metrics.json").read_text())
                          for root in (slurm_dir, local_dir))
        assert on_slurm["macro_acc"] == here["macro_acc"] and on_slurm["macro_acc_norm"] == here["macro_acc_norm"]
        for task, scores in here["tasks"].items():
            assert (on_slurm["tasks"][task]["acc"], on_slurm["tasks"][task]["acc_norm"]) == (scores["acc"], scores["acc_norm"])
    on_slurm, here = (json.loads((root / "results/finetune/micro_causal/summary.json").read_text())
                      for root in (slurm_dir, local_dir))
    assert on_slurm["steps_run"] == here["steps_run"] == 6
    assert on_slurm["final_eval_loss"] == pytest.approx(here["final_eval_loss"], abs=1e-6)
