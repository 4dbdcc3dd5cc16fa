"""What the SLURM tests share: a Snakemake run through the profile, its dry run's jobs, and the
sbatch call the SLURM plugin builds for a job (no cluster needed for the last two)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PROFILE = REPOSITORY / "profiles" / "slurm"
PRESET = REPOSITORY / "presets" / "ministral-3b.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def snakemake(workdir: Path, configfile: Path, *args: str, env: dict | None = None, timeout: int = 600, popen=False):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    command = [str(SNAKEMAKE), "-s", str(REPOSITORY / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), *args]
    if popen:
        return subprocess.Popen(command, cwd=workdir, env=environment, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout)


def dry_run_jobs(output: str) -> list[dict]:
    """Each planned job of a dry run: rule name, wildcards and the resources line as a dict."""
    jobs = []
    for line in output.splitlines():
        rule = re.fullmatch(r"(?:local)?rule (\w+):", line)
        if rule:
            jobs.append({"rule": rule.group(1), "wildcards": "", "resources": {}})
        elif jobs and line.startswith("    wildcards: "):
            jobs[-1]["wildcards"] = line.split(": ", 1)[1]
        elif jobs and line.startswith("    resources: "):
            jobs[-1]["resources"] = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split(", "))
    return jobs


def preset_dry_run(tmp_path: Path, configfile: Path = PRESET, *args: str) -> list[dict]:
    result = snakemake(tmp_path, configfile, "--profile", str(PROFILE), "--dry-run", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dry_run_jobs(result.stdout + result.stderr)


class JobResources(dict):
    """Job resources as the SLURM plugin reads them: .get() and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error


@dataclass
class FakeJob:
    """The parts of a Snakemake job that the plugin's sbatch builder looks at."""

    resources: JobResources
    threads: int
    name: str = "job"

    def is_group(self):
        return False


def sbatch_flags(resources: dict, threads: int) -> str:
    """The sbatch call the SLURM plugin builds for a job with these resources (account and partition aside)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    typed = JobResources({name: int(value) if value.isdigit() else value for name, value in resources.items()
                          if "<TBD>" not in value and name not in ("tmpdir", "mem", "disk", "mem_mib", "disk_mib")})
    job = FakeJob(typed, threads)
    params = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": "c", "account": "", "partition": "", "workdir": "."}
    return get_submit_command(job, params) + set_gres_string(job)
