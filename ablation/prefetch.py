"""Fetch everything a study downloads onto the submit host, so GPU jobs can run offline.

Compute nodes often have no internet. The ``prefetch`` rule runs on the submit host before any
GPU job: it downloads the model snapshot at the configured revision (and records the commit it
resolved to, which every later job pins), the hub datasets of the real or original task set
and the fine-tuning dataset into the shared Hugging Face cache. GPU jobs then run with
HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (``ablation.jobs.start_job``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ablation.io import atomic_write_json, read_json
from ablation.references import is_local_reference

log = logging.getLogger(__name__)


def prefetch_model(model_id: str, revision: str | None) -> dict:
    """Download (or find in the cache, offline) a hub model's snapshot; return its pinned identity."""
    if is_local_reference(model_id):
        return {"id": model_id, "local": True}
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download(model_id, revision=revision))
    log.info("model %s at %s is cached in %s", model_id, revision, snapshot)
    return {"id": model_id, "revision": revision, "resolved_commit": snapshot.name}


def prefetch_dataset(dataset: str) -> str:
    from datasets import load_dataset

    load_dataset(dataset)
    return dataset


def prefetch_hub_dataset(path: str, name: str | None, revision: str | None) -> dict:
    """A bridge dataset (e.g. gsm8k main, hotpot_qa distractor) into the datasets cache."""
    from datasets import load_dataset

    load_dataset(path, name, revision=revision)
    return {"path": path, "name": name, "revision": revision}


def prefetch(
    *,
    model_id: str | None,
    revision: str | None,
    tasks: list[str],
    finetune_dataset: str | None,
    fetch_tasks: Callable[[list[str]], None] | None = None,
    out_path: str | Path,
    bridge_models: dict[str, dict] | None = None,
    bridge_datasets: list[dict] | None = None,
) -> dict:
    """Fetch the prefill study's model, task and fine-tuning datasets, and the bridge's hub models
    and datasets; write what was pinned to ``out_path``. ``fetch_tasks`` (the prefill study's
    ``ablation.prefill.task_sets.fetch_task_datasets``) downloads ``tasks``' datasets."""
    if tasks and fetch_tasks is None:
        raise ValueError(f"tasks {', '.join(tasks)} to prefetch, but no fetch_tasks to fetch their datasets")
    model = prefetch_model(model_id, revision) if model_id else None
    if tasks:
        fetch_tasks(tasks)
    record = {
        "model": model,
        "tasks": list(tasks),
        "finetune_dataset": prefetch_dataset(finetune_dataset) if finetune_dataset else None,
        "bridge_models": {name: prefetch_model(m["id"], m["revision"]) for name, m in (bridge_models or {}).items()},
        "bridge_datasets": [prefetch_hub_dataset(d["path"], d["name"], d["revision"]) for d in bridge_datasets or []],
    }
    atomic_write_json(out_path, record)
    return record


def pinned_revision(prefetch_record: str | Path | None, configured: str | None, bridge_model: str | None = None) -> str | None:
    """The commit ``prefetch`` resolved the configured revision to, so every job loads the same weights.

    ``bridge_model`` names one of the bridge's models instead of the prefill study's model.
    """
    if prefetch_record is None:
        return configured
    record = read_json(prefetch_record)
    model = record["bridge_models"].get(bridge_model) if bridge_model else record["model"]
    return (model or {}).get("resolved_commit", configured)
