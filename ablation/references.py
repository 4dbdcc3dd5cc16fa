"""Whether a model id names a directory on disk or a hub repository: light enough for the Snakefile,
which asks it while the DAG is built (``ablation.models`` imports torch and transformers)."""

from __future__ import annotations

from pathlib import Path


def is_local_reference(model_id: str) -> bool:
    """True when ``model_id`` names a directory on disk rather than a hub repository."""
    return Path(model_id).exists() or model_id.startswith(("/", "./", "../", "~"))
