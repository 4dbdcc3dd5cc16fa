"""Optional upload of a finished run to a Hugging Face Hub repository (one folder per run).

The token comes only from the environment (HF_TOKEN) or the stored HF login, which
huggingface_hub reads itself; it is never passed around, logged or written to outputs.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

log = logging.getLogger(__name__)


def upload_run(final_dir: Path, summary: dict, repo_id: str, run_name: str) -> dict:
    """Upload ``final/`` and the summary under ``<run_name>/`` of ``repo_id``; return where it went."""
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        summary_path = Path(staging) / "summary.json"
        summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        api.upload_folder(repo_id=repo_id, folder_path=str(final_dir), path_in_repo=f"{run_name}/final")
        commit = api.upload_file(repo_id=repo_id, path_or_fileobj=str(summary_path), path_in_repo=f"{run_name}/summary.json")
    log.info("uploaded %s to %s/%s", final_dir, repo_id, run_name)
    return {"repo_id": repo_id, "path_in_repo": run_name, "commit_url": str(commit)}
