"""Checkpoints tied to the settings that made them: a rerun resumes only what the same settings started.

Every resumable job (fine-tunes and tuning trials, bridge training, free-form generation batches)
hashes the settings and inputs that determine its result and claims its checkpoint (a directory
or a partial file) with that hash. The claim is recorded beside the checkpoint in
``<checkpoint>.resume.json``: the hash, how often the run resumed, and whether it completed.

A rerun resumes only an unfinished run's checkpoint with the same hash. Any other checkpoint
(settings or inputs changed, no record, or a completed run, which is what ``--forcerun`` and a
rerun after the outputs were removed find) is deleted, not moved aside, so that the disk never
fills with dead runs, and the run starts from step 0 saying why, in its log and its summary.
Starting afresh also deletes the earlier attempt's files that the job names (its per-step
samples, its TensorBoard events), so a restarted run's outputs are all its own.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ablation.io import atomic_write_json, read_json

log = logging.getLogger(__name__)


def record_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".resume.json")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@dataclass
class CheckpointClaim:
    """A job's hold on its checkpoint: whether it may resume it, and what its summary says about that."""

    checkpoint: Path
    sha256: str
    resumable: bool  # the checkpoint (if any is there yet) was written under these settings
    restarted_because: str | None = None  # why a checkpoint found was deleted instead of resumed
    resumes: int = 0
    resumed_from: str | None = None
    main_process: bool = True  # in a distributed launch the other processes only read the claim


    def resumed(self, point: str) -> None:
        """Record that the run continues from ``point`` (a step, a count of saved rows)."""
        self.resumes += 1
        self.resumed_from = point
        self._write(complete=False)

    def finish(self, keep: bool = False) -> None:
        """The final output is written: delete the checkpoint, or keep it marked as a completed run's."""
        if keep:
            self._write(complete=True)
            return
        _remove(self.checkpoint)
        record_path(self.checkpoint).unlink(missing_ok=True)

    def summary(self) -> dict:
        """The summary's record of how this result was reached."""
        return {
            "settings_sha256": self.sha256,
            "resumed_from": self.resumed_from,
            "resumes": self.resumes,
            "restarted_because": self.restarted_because,
        }

    def _write(self, complete: bool) -> None:
        if not self.main_process:
            return
        atomic_write_json(record_path(self.checkpoint), {"settings_sha256": self.sha256, "resumes": self.resumes, "complete": complete})


def claim_checkpoint(
    checkpoint: str | Path, sha256: str, *, job: str, attempt_files: list[Path] = (), main_process: bool = True
) -> CheckpointClaim:
    """Claim ``checkpoint`` for a run whose settings hash to ``sha256``; delete it, and the earlier
    attempt's ``attempt_files``, unless it is an unfinished checkpoint of the same settings.

    Every process of a distributed launch reaches the same decision; only the main one deletes and writes.
    """
    checkpoint = Path(checkpoint)
    record_file = record_path(checkpoint)
    record = read_json(record_file) if record_file.exists() else None
    reason = None
    if checkpoint.exists():
        if record is None:
            reason = "the checkpoint has no record of the settings that wrote it"
        elif record.get("complete"):
            reason = "the checkpoint belongs to a completed run (its outputs were removed or its rerun forced)"
        elif record.get("settings_sha256") != sha256:
            reason = f"the settings or inputs changed since the checkpoint was written (sha256 {str(record.get('settings_sha256'))[:12]} -> {sha256[:12]})"
    else:
        record = None  # a record without a checkpoint: nothing to resume
    if reason is not None:
        log.warning("%s: not resuming: %s; deleting %s and starting from step 0", job, reason, checkpoint)
        if main_process:
            _remove(checkpoint)
        record = None
    claim = CheckpointClaim(checkpoint, sha256, resumable=record is not None, restarted_because=reason, main_process=main_process)
    if record is not None:
        claim.resumes = record.get("resumes", 0)
    elif main_process:
        for path in attempt_files:
            _remove(Path(path))
    claim._write(complete=False)
    return claim
