"""Job start-up: logs routed to the rule's file, offline unless the executor says jobs are online,
torch's thread budget set without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SHOW = """
import logging, os, sys
from ablation.jobs import start_job
start_job(sys.argv[1], 1, offline=True)
logging.getLogger("probe").info("routed")
print("stdout routed")
sys.__stdout__.write(f"{os.environ.get('HF_HUB_OFFLINE')} {os.environ.get('HF_DATASETS_OFFLINE')}\\n")
"""


def run(tmp_path, **environment):
    base = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(SHOW), str(tmp_path / "job.log")],
                          env={**base, **environment}, capture_output=True, text=True, check=True)


def test_a_job_logs_to_its_file_and_runs_offline(tmp_path):
    assert run(tmp_path).stdout.strip() == "1 1"
    log = (tmp_path / "job.log").read_text()
    assert "probe: routed" in log and "stdout routed" in log


def test_online_executors_keep_downloads_allowed(tmp_path):
    assert run(tmp_path, ABLATION_JOBS_ONLINE="1").stdout.strip() == "None None"


THREADS = """
import sys
from ablation.jobs import start_job
start_job(sys.argv[1], int(sys.argv[2]))
loaded = "torch" in sys.modules
import torch
sys.__stdout__.write(f"{loaded} {torch.get_num_threads()}\\n")
"""


def test_a_job_sets_torchs_threads_without_importing_it(tmp_path):
    base = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")}
    for threads in (1, 2):
        shown = subprocess.run([sys.executable, "-c", textwrap.dedent(THREADS), str(tmp_path / "job.log"), str(threads)],
                               env=base, capture_output=True, text=True, check=True).stdout.strip()
        assert shown == f"False {threads}"
