"""Start a job module on several processes with ``accelerate launch`` (DDP or FSDP), or none.

Shared by the fine-tunes and the bridge runs: the job is a JSON file beside the run's outputs,
and ``python -m <module> JOB`` runs it in each process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

STRATEGIES = ("ddp", "fsdp")


def free_port() -> int:
    """A free TCP port on the loopback interface for the processes' rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_launch(module: str, job_file: str | Path, *, processes: int, precision: str = "fp32", strategy: str = "ddp") -> None:
    """Run ``python -m module job_file`` on ``processes`` local processes; raise if any fails."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown distributed strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", str(processes), "--num_machines", "1",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
        "--mixed_precision", "bf16" if precision == "bf16" else "no", "--dynamo_backend", "no",
        *(["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD"] if strategy == "fsdp" else ["--multi_gpu"]),
        "-m", module, str(job_file),
    ]  # fmt: skip
    subprocess.run(command, check=True)
