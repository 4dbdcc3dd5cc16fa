"""Start of every workflow job: logging into the rule's log file and a thread budget."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# what torch (OpenMP, MKL) reads for its thread count when it is first imported
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def start_job(log_path: str | Path, threads: int = 1, offline: bool = False) -> None:
    """Send the root logger, warnings, stdout and stderr to ``log_path``; let torch use ``threads`` cores.

    The thread count is set in the environment torch reads when it is imported, so a job that
    never needs torch (world text, reports) does not pay its second of import.

    ``offline`` forbids Hugging Face downloads (compute nodes read what ``prefetch`` cached); it
    must be set before huggingface_hub or datasets are imported, hence here, first thing.
    Executors whose jobs cannot see the submit host's cache (one Vast.ai instance per job) set
    ABLATION_JOBS_ONLINE=1 to let jobs download for themselves.
    """
    if offline and os.environ.get("ABLATION_JOBS_ONLINE") != "1":
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(stream)],
        force=True,
    )
    logging.captureWarnings(True)
    threads = max(1, threads)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:  # imported before the job started: it has read the environment already
        sys.modules["torch"].set_num_threads(threads)
