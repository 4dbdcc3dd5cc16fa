"""Provenance stamps: which model, code, config and libraries produced an output."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ablation.code_version import entry_point_code_sha256
from ablation.io import settings_sha256, update_digest
from ablation.references import is_local_reference

TRACKED_LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "lm_eval", "accelerate", "snakemake")
REPOSITORY = Path(__file__).resolve().parent.parent


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str | None:
    """The CPU's model name (Linux /proc/cpuinfo, else what the platform reports); None if unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_driver_version() -> str | None:
    """The NVIDIA driver version as nvidia-smi reports it; None without one."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def hardware() -> dict:
    """The machine a result was computed on, and the torch build it ran: a bf16 number depends on both.

    GPU entries (name, count, memory, driver, CUDA runtime, cuDNN) are null on a machine without a
    CUDA device; ``torch_build`` says what torch was compiled against either way.
    """
    import torch  # here, not at module level: the workflow imports this module to build its DAG

    on_gpu = torch.cuda.is_available()
    properties = torch.cuda.get_device_properties(0) if on_gpu else None
    return {
        "gpu_name": properties.name if on_gpu else None,
        "gpu_count": torch.cuda.device_count() if on_gpu else None,
        "gpu_memory_bytes": properties.total_memory if on_gpu else None,
        "gpu_driver": gpu_driver_version() if on_gpu else None,
        "cuda": torch.version.cuda if on_gpu else None,
        "cudnn": torch.backends.cudnn.version() if on_gpu and torch.backends.cudnn.is_available() else None,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_build": {
            "version": torch.__version__,
            "git_version": torch.version.git_version,
            "cuda": torch.version.cuda,
            "hip": torch.version.hip,
            "debug": torch.version.debug,
        },
    }


def code_commit(repository: Path = REPOSITORY) -> str:
    """The workflow's git commit, with ``-dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repository), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown (not a git checkout)"
    return f"{commit}-dirty" if dirty else commit


def config_hash(config: dict) -> str:
    """Stable hash of a (validated) config: same settings, same hash."""
    return settings_sha256(config)


def directory_hash(directory: str | Path) -> str:
    """sha256 over the relative paths and contents of every file in ``directory``."""
    directory = Path(directory)
    digest = hashlib.sha256()
    # hidden files (e.g. .snakemake_timestamp) are bookkeeping, not model content
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        update_digest(digest, path)
    return digest.hexdigest()


def model_identity(model_id: str, revision: str | None) -> dict:
    """A local model is identified by its content hash, a hub model by its resolved commit."""
    if is_local_reference(model_id):
        return {"id": str(model_id), "local_dir_sha256": directory_hash(model_id)}
    identity = {"id": model_id, "revision": revision}
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(model_id, revision=revision, local_files_only=True)
        identity["resolved_commit"] = Path(snapshot).name
    except Exception as error:  # the commit is a nicety; the run itself already loaded the model
        identity["resolved_commit"] = f"unresolved ({type(error).__name__})"
    return identity


def provenance(
    *,
    model_id: str,
    revision: str | None,
    mask: str | None,
    config: dict,
    seed: int,
    wall_seconds: float,
    weights: dict | None = None,
    tokenization: dict | None = None,
) -> dict:
    """The stamp every metrics and summary file carries.

    ``weights`` (``ablation.models.weights_record``) says how the model's weights were loaded: the
    checkpoint's quantization and whether it was dequantized. ``tokenization`` (evaluations) says
    whether a BOS token was prepended and how prompt and choice were split into tokens. Stamps
    without them omit the keys.
    """
    stamp = {
        "model": model_identity(model_id, revision),
        "mask": mask,
        "code_commit": code_commit(),
        # the ablation modules this job's script imports: its rule's library_code params value
        "library_code_sha256": entry_point_code_sha256(),
        "config_sha256": config_hash(config),
        "library_versions": library_versions(),
        "hardware": hardware(),
        "seed": seed,
        "wall_seconds": round(wall_seconds, 3),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    if weights is not None:
        stamp["weights"] = weights
    if tokenization is not None:
        stamp["tokenization"] = tokenization
    return stamp


UNRECORDED_CODE = "unrecorded"  # results stamped before the library code's hash was recorded


def check_one_library_code(
    stamps: Mapping[str, Mapping | None], *, allow_mixed: bool = False, what: str = "results"
) -> dict[str, list[str]]:
    """Named results grouped by the library code that made them (``provenance.library_code_sha256``).

    Results of one kind made by different code (old ones kept with ``--rerun-triggers mtime input``)
    are not comparable side by side: ValueError naming which, unless ``allow_mixed`` (config
    ``report.allow_mixed_code``). ``stamps``: name -> that result's provenance stamp.
    """
    groups: dict[str, list[str]] = {}
    for name, stamp in stamps.items():
        groups.setdefault((stamp or {}).get("library_code_sha256") or UNRECORDED_CODE, []).append(name)
    if len(groups) > 1 and not allow_mixed:
        listing = "; ".join(f"{code[:12]}: {', '.join(names)}" for code, names in groups.items())
        raise ValueError(
            f"the {what} were made by different library code ({listing}); rerun the outdated ones "
            "(a plain `snakemake` does), or set report.allow_mixed_code: true to tabulate them together"
        )
    return groups
