"""Launch a fine-tune in this process, or across several GPUs with ``accelerate launch``.

A run that asks for more than one process is written as a job file next to its outputs and
started as ``accelerate launch --multi_gpu --num_processes N -m ablation.prefill.finetune JOB``: DDP by
default, FSDP (full shard) when asked. Each process trains on its share of every step's
batches and gradient accumulation is divided by N, so the effective batch, and the loss curve,
stay those of a one-process run. Eval loss matches too when the eval records fill whole
per-device batches on every process (otherwise the last batch is padded with repeats).
"""

from __future__ import annotations

from pathlib import Path

from ablation.prefill.finetune.run import FinetuneSettings, run_finetune
from ablation.io import atomic_write_json, read_json
from ablation.layout import SUMMARY_FILE
from ablation.launch import STRATEGIES, accelerate_launch


def launch_finetune(job: dict, *, processes: int = 1, strategy: str = "ddp", precision: str = "fp32") -> dict:
    """Run ``run_finetune(**job)`` (``job["settings"]`` a plain dict) on ``processes`` processes; return the summary."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown distributed strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    if processes <= 1:
        return run_finetune(**{**job, "settings": FinetuneSettings(**job["settings"])})
    run_dir = Path(job["run_dir"])
    job_file = atomic_write_json(run_dir / "launch_job.json", {**job, "run_dir": str(run_dir)})
    accelerate_launch("ablation.prefill.finetune", job_file, processes=processes, precision=precision, strategy=strategy)
    return read_json(run_dir / SUMMARY_FILE)
