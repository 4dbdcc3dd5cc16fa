"""Optional upload of a finished run to a Hugging Face Hub repository (one folder per run).

The run goes with a model card (``<run>/README.md``): base model and revision, dataset, train
mask and steps, the workflow's commit, and the run's Stage 4 and side-effect metrics where they
exist at upload time and scored these weights, else the paths they land at. The token comes only
from the environment (HF_TOKEN) or the stored HF login, which huggingface_hub reads itself; it is
never passed around, logged or written to outputs.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData

from ablation.layout import SUMMARY_FILE, eval_metrics_path
from ablation.provenance import directory_hash
from ablation.references import is_local_reference

log = logging.getLogger(__name__)

# The evaluations of a fine-tune the card reports: (title, mask), as the report names them
CARD_EVALUATIONS = (("Stage 4: ablated (prefill_bidir) after the fine-tune", "prefill_bidir"), ("Side effect: evaluated causal", "causal"))


def _metrics_lines(results_dir: Path, run_name: str, final_dir: Path) -> list[str]:
    """Each evaluation's numbers, if its metrics on disk scored ``final_dir`` (a rerun's are its predecessor's until re-evaluated)."""
    lines, final_sha256 = [], directory_hash(final_dir)
    for title, mask in CARD_EVALUATIONS:
        path = eval_metrics_path(results_dir, run_name, mask)
        metrics = json.loads(path.read_text()) if path.is_file() else None
        if metrics is None or metrics["provenance"]["model"].get("local_dir_sha256") != final_sha256:
            earlier = " (the metrics there are of earlier weights)" if metrics is not None else ""
            lines.append(f"- {title}: not yet evaluated at upload; the workflow writes it to `{path}`{earlier}.")
            continue
        tasks = ", ".join(f"{task} {numbers['acc']:.4f}" for task, numbers in metrics["tasks"].items())
        lines.append(f"- {title}: macro acc {metrics['macro_acc']:.4f} (chance {metrics['chance_macro']:.4f}); {tasks} (`{path}`)")
    return lines


def run_card(summary: dict, *, run_name: str, dataset: str, results_dir: str | Path, final_dir: str | Path) -> ModelCard:
    """The model card of a finished fine-tune, from its summary and the evaluations on disk of its ``final_dir``."""
    base = summary["provenance"]["model"]
    base_id, revision = base["id"], base.get("resolved_commit") or base.get("revision")
    local_base, local_dataset = is_local_reference(base_id), is_local_reference(dataset)
    data = ModelCardData(
        library_name="transformers",
        tags=["prefill-mask-ablation", f"train-mask-{summary['train_mask']}"],
        base_model=None if local_base else base_id,
        datasets=None if local_dataset else [dataset],
    )
    base_line = f"`{base_id}` (local directory, sha256 {base['local_dir_sha256']})" if local_base else f"`{base_id}` at revision `{revision}`"
    body = [
        f"# {run_name}",
        "",
        f"A full-weight fine-tune from the prefill-mask ablation workflow. {summary.get('description') or ''}".rstrip(),
        "",
        f"- Base model: {base_line}",
        f"- Dataset: `{dataset}`{' (local file)' if local_dataset else ''}, {summary['train_records']} training records",
        f"- Train mask: `{summary['train_mask']}`",
        f"- Steps: {summary['steps_run']} of max {summary['max_steps']} (stop reason: {summary['stop_reason']}); final eval loss {summary['final_eval_loss']:.4f}",
        f"- Workflow commit: `{summary['provenance']['code_commit']}` (library code sha256 `{summary['provenance'].get('library_code_sha256')}`)",
        "",
        "## Evaluations",
        "",
        *_metrics_lines(Path(results_dir), run_name, Path(final_dir)),
        "",
        "`summary.json` beside this card holds every setting and the full provenance.",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def upload_run(final_dir: Path, summary: dict, repo_id: str, run_name: str, card: ModelCard) -> dict:
    """Upload ``final/``, the summary and the model card under ``<run_name>/`` of ``repo_id``; return where it went."""
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        (Path(staging) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        card.save(Path(staging) / "README.md")
        api.upload_folder(repo_id=repo_id, folder_path=str(final_dir), path_in_repo=f"{run_name}/final")
        commit = api.upload_folder(repo_id=repo_id, folder_path=staging, path_in_repo=run_name)
    log.info("uploaded %s to %s/%s", final_dir, repo_id, run_name)
    return {"repo_id": repo_id, "path_in_repo": run_name, "commit_url": str(commit)}
