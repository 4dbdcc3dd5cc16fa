"""Launch a fine-tune in this process, or across several GPUs with ``accelerate launch``.

A run that asks for more than one process is written as a job file next to its outputs and
started as ``accelerate launch --multi_gpu --num_processes N -m ablation.finetune JOB``: DDP by
default, FSDP (full shard) when asked. Each process trains on its share of every step's
batches and gradient accumulation is divided by N, so the effective batch, and the loss curve,
stay those of a one-process run. Eval loss matches too when the eval records fill whole
per-device batches on every process (otherwise the last batch is padded with repeats).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from ablation.finetune.run import FinetuneSettings, run_finetune
from ablation.io import atomic_write_json

STRATEGIES = ("ddp", "fsdp")


def free_port() -> int:
    """A free TCP port on the loopback interface for the processes' rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_finetune(job: dict, *, processes: int = 1, strategy: str = "ddp", precision: str = "fp32") -> dict:
    """Run ``run_finetune(**job)`` (``job["settings"]`` a plain dict) on ``processes`` processes; return the summary."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown distributed strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    if processes <= 1:
        return run_finetune(**{**job, "settings": FinetuneSettings(**job["settings"])})
    run_dir = Path(job["run_dir"])
    job_file = atomic_write_json(run_dir / "launch_job.json", {**job, "run_dir": str(run_dir)})
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", str(processes), "--num_machines", "1",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
        "--mixed_precision", "bf16" if precision == "bf16" else "no", "--dynamo_backend", "no",
        *(["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD"] if strategy == "fsdp" else ["--multi_gpu"]),
        "-m", "ablation.finetune", str(job_file),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return json.loads((run_dir / "summary.json").read_text())
