"""Time and cost planner for fine-tunes on rented or cluster GPUs.

Reads an observed step time (from a finished or running fine-tune's ``loss_history.csv``, or
given directly), rescales it to each GPU offer by relative speed and multi-GPU parallel
efficiency, and prints wall time and cost for optimistic / base / pessimistic cases, in the
shape of the original study's planner. Its speed factors and efficiencies are the
original planner's defaults; a config can override every number.

Model: ``wall_h = startup_h + steps * s_per_step_on_offer * case_factor / 3600``, and
``cost = wall_h * price_per_hour`` (the price of the whole instance).

    python -m ablation.prefill.planner --seconds-per-step 2.82 --measured-on A100_SXM4 --steps 6000 \\
        --offer "A100 current=A100_SXM4x1@0.7411"
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ablation.io import atomic_write_text
from ablation.layout import SUMMARY_FILE

# per-GPU speed relative to one RTX 3090 (the original's estimator)
SPEED_FACTORS = {"RTX_3090": 1.0, "RTX_4090": 1.6, "A100_SXM4": 2.0, "H100_PCIE": 3.2, "H100_SXM": 4.0, "H100_NVL": 3.8}
# (largest GPU count, efficiency): scaling is never perfect
PARALLEL_EFFICIENCY = ((1, 1.0), (2, 0.90), (4, 0.85), (8, 0.78))
LARGE_CLUSTER_EFFICIENCY = 0.72
CASE_FACTORS = {"optimistic": 0.9, "base": 1.0, "pessimistic": 1.5}  # multiply the step time
STARTUP_MINUTES = 10.0  # instance boot, image pull, model download, per run


@dataclass(frozen=True)
class Offer:
    """A machine one can rent or get: ``gpus`` GPUs of kind ``gpu`` at ``price_per_hour`` for the whole machine."""

    name: str
    gpu: str
    gpus: int
    price_per_hour: float

    @classmethod
    def parse(cls, text: str) -> Offer:
        """``NAME=GPUxCOUNT@PRICE``, e.g. ``A100 current=A100_SXM4x1@0.7411``."""
        try:
            name, rest = text.split("=", 1)
            hardware, price = rest.split("@", 1)
            gpu, count = hardware.rsplit("x", 1)
            return cls(name.strip(), gpu.strip(), int(count), float(price))
        except ValueError as error:
            raise ValueError(f"cannot read offer {text!r}; expected NAME=GPUxCOUNT@PRICE, e.g. 'A100=A100_SXM4x1@0.74'") from error


def parallel_efficiency(gpus: int) -> float:
    if gpus < 1:
        raise ValueError(f"an offer needs at least one GPU, got {gpus}")
    return next((efficiency for limit, efficiency in PARALLEL_EFFICIENCY if gpus <= limit), LARGE_CLUSTER_EFFICIENCY)


def throughput(gpu: str, gpus: int, speed_factors: Mapping[str, float]) -> float:
    """Effective speed of ``gpus`` GPUs of kind ``gpu``, in RTX-3090 units."""
    if gpu not in speed_factors:
        raise ValueError(f"no speed factor for GPU {gpu!r}; known: {', '.join(speed_factors)}")
    return speed_factors[gpu] * gpus * parallel_efficiency(gpus)


def seconds_per_step_from_history(path: str | Path, skip_steps: int = 1) -> float:
    """Observed s/step of a fine-tune from its loss history (elapsed time between logged steps).

    Steps up to ``skip_steps`` are left out: the first step carries start-up work.
    """
    with open(path, newline="") as handle:
        rows = [
            (int(row["step"]), float(row["elapsed_seconds"]))
            for row in csv.DictReader(handle)
            if row.get("elapsed_seconds") and int(row["step"]) > skip_steps
        ]
    if len(rows) < 2 or rows[-1][0] == rows[0][0]:
        raise ValueError(f"{path} has too few timed steps to measure throughput (need two logged steps after step {skip_steps})")
    (first_step, first_time), (last_step, last_time) = rows[0], rows[-1]
    return (last_time - first_time) / (last_step - first_step)


@dataclass(frozen=True)
class PlanRow:
    offer: Offer
    seconds_per_step: float
    wall_hours: dict[str, float]
    cost: dict[str, float]


def plan(
    *,
    seconds_per_step: float,
    measured_on: str,
    measured_gpus: int,
    steps: int,
    offers: Sequence[Offer],
    case_factors: Mapping[str, float] = CASE_FACTORS,
    startup_minutes: float = STARTUP_MINUTES,
    speed_factors: Mapping[str, float] = SPEED_FACTORS,
) -> list[PlanRow]:
    """Wall time and cost of ``steps`` steps on each offer, from a step time measured on ``measured_gpus`` x ``measured_on``."""
    if seconds_per_step <= 0 or steps < 1:
        raise ValueError("seconds_per_step must be positive and steps at least 1")
    reference = throughput(measured_on, measured_gpus, speed_factors)
    rows = []
    for offer in offers:
        step_time = seconds_per_step * reference / throughput(offer.gpu, offer.gpus, speed_factors)
        wall = {case: startup_minutes / 60 + steps * step_time * factor / 3600 for case, factor in case_factors.items()}
        rows.append(PlanRow(offer, step_time, wall, {case: hours * offer.price_per_hour for case, hours in wall.items()}))
    return rows


def plan_markdown(rows: Sequence[PlanRow], steps: int, seconds_per_step: float, measured_on: str, hardware_note: str = "") -> str:
    """The plan as the original printed it: wall and $ as optimistic / base / pessimistic."""
    cases = list(rows[0].wall_hours) if rows else list(CASE_FACTORS)
    lines = [
        f"# Fine-tune time and cost plan: {steps} steps",
        "",
        f"Observed {seconds_per_step:.3f} s/step on {measured_on}{hardware_note}; cases {' / '.join(cases)}.",
        "",
        "| offer | GPUs | $/h | s/step | wall h (" + " / ".join(cases) + ") | cost $ (" + " / ".join(cases) + ") |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        wall = " / ".join(f"{row.wall_hours[case]:.2f}" for case in cases)
        cost = " / ".join(f"{row.cost[case]:.2f}" for case in cases)
        lines.append(
            f"| {row.offer.name} | {row.offer.gpus}x {row.offer.gpu} | {row.offer.price_per_hour:.4f} | "
            f"{row.seconds_per_step:.3f} | {wall} | {cost} |"
        )
    return "\n".join(lines) + "\n"


def gpu_model(kind: str) -> str:
    """The model number a GPU kind's CUDA device name holds ("A100_SXM4" -> "A100", as in "NVIDIA A100-SXM4-80GB")."""
    return kind.removeprefix("RTX_").split("_")[0]


def recorded_hardware_note(summary_path: Path, gpu: str) -> str:
    """What the run's summary says it ran on, flagged where that is not the configured GPU kind the plan rescales from."""
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}  # a running fine-tune has none yet
    hardware = (summary.get("provenance") or {}).get("hardware")
    if not hardware:
        return " (config `planner.measured_on`; no run summary records the hardware to check it against)"
    name = hardware.get("gpu_name")
    recorded = f"{hardware.get('gpu_count')}x {name}" if name else f"CPU ({hardware.get('cpu_model')})"
    if name and gpu_model(gpu) in name:
        return f" (config `planner.measured_on`; the run's summary records {recorded})"
    return f" (config `planner.measured_on`), **but the run's summary records {recorded}: the times below assume {gpu} gave it**"


def write_plan(history: str | Path, settings: Mapping, out_path: str | Path) -> Path:
    """``plan.md`` for the config's ``planner`` section, from a fine-tune's loss history and the hardware its summary records."""
    seconds, gpu = seconds_per_step_from_history(history), settings["measured_on"]["gpu"]
    rows = plan(
        seconds_per_step=seconds,
        measured_on=gpu,
        measured_gpus=settings["measured_on"]["gpus"],
        steps=settings["steps"],
        offers=[Offer(**offer) for offer in settings["offers"]],
        case_factors=settings["case_factors"],
        startup_minutes=settings["startup_minutes"],
    )
    note = recorded_hardware_note(Path(history).parent / SUMMARY_FILE, gpu)
    return atomic_write_text(out_path, plan_markdown(rows, settings["steps"], seconds, gpu, note))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Wall time and cost of a fine-tune on GPU offers.")
    observed = parser.add_mutually_exclusive_group(required=True)
    observed.add_argument("--seconds-per-step", type=float, help="observed step time")
    observed.add_argument("--history", type=Path, help="a fine-tune's loss_history.csv to read the step time from")
    parser.add_argument("--measured-on", required=True, help=f"GPU of the observation ({', '.join(SPEED_FACTORS)})")
    parser.add_argument("--measured-gpus", type=int, default=1)
    parser.add_argument("--steps", type=int, required=True, help="optimiser steps to plan for")
    parser.add_argument("--offer", action="append", required=True, type=Offer.parse, help="NAME=GPUxCOUNT@PRICE_PER_HOUR (repeatable)")
    arguments = parser.parse_args(argv)
    seconds = arguments.seconds_per_step or seconds_per_step_from_history(arguments.history)
    rows = plan(
        seconds_per_step=seconds,
        measured_on=arguments.measured_on,
        measured_gpus=arguments.measured_gpus,
        steps=arguments.steps,
        offers=arguments.offer,
    )
    print(plan_markdown(rows, arguments.steps, seconds, arguments.measured_on), end="")


if __name__ == "__main__":
    main()
