"""Run a bridge job in this process, or on several GPUs with ``accelerate launch`` (DDP)."""

from __future__ import annotations

from pathlib import Path

from ablation.bridge.training import run_bridge
from ablation.bridge.run_format import SUMMARY_FILE
from ablation.io import atomic_write_json, read_json
from ablation.launch import accelerate_launch


def launch_bridge(job: dict, *, processes: int = 1) -> dict:
    """``run_bridge(**job)`` on ``processes`` processes; return the summary."""
    if processes <= 1:
        return run_bridge(**job)
    run_dir = Path(job["run_dir"])
    job_file = atomic_write_json(run_dir / "launch_job.json", {**job, "run_dir": str(run_dir)})
    accelerate_launch("ablation.bridge", job_file, processes=processes, precision=job["settings"]["precision"])
    return read_json(run_dir / SUMMARY_FILE)
