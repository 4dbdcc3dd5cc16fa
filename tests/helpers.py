"""Helpers the workflow tests of every study share: a real Snakemake run, and its dry run's job counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
PRESET = REPOSITORY / "presets" / "ministral-3b.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def snakemake(workdir: Path, configfile: Path, *args: str, repository: Path = REPOSITORY) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(repository / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(configfile), "--cores", "2", *args],
        capture_output=True, text=True, env=environment, timeout=1200,
    )


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as rule -> count (without the total)."""
    lines = (result.stdout + result.stderr).splitlines()
    start = lines.index("Job stats:") + 3
    jobs = {}
    for line in lines[start:]:
        rule, count = line.split()
        if rule == "total":
            return jobs
        jobs[rule] = int(count)
    raise AssertionError("no total line in the job stats")
