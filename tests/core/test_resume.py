"""Checkpoints tied to their settings (ablation.resume): what a rerun resumes, and what it deletes."""

from __future__ import annotations

from ablation.io import settings_sha256
from ablation.resume import claim_checkpoint, record_path


def test_the_settings_hash_ignores_key_order_and_sees_every_value():
    assert settings_sha256({"lr": 1e-3, "steps": 10}) == settings_sha256({"steps": 10, "lr": 1e-3})
    assert settings_sha256({"lr": 1e-3, "steps": 10}) != settings_sha256({"lr": 5e-5, "steps": 10})


def test_an_unfinished_checkpoint_of_the_same_settings_is_resumed_and_counted(tmp_path):
    checkpoint, samples = tmp_path / "checkpoints", tmp_path / "samples_step_4.jsonl"
    claim_checkpoint(checkpoint, "a", job="test")
    checkpoint.mkdir()
    samples.write_text("{}\n")
    claim = claim_checkpoint(checkpoint, "a", job="test", attempt_files=[samples])
    assert claim.resumable and checkpoint.is_dir() and samples.exists()
    claim.resumed("step 4")
    again = claim_checkpoint(checkpoint, "a", job="test")
    again.resumed("step 8")
    assert again.summary() == {"settings_sha256": "a", "resumed_from": "step 8", "resumes": 2, "restarted_because": None}


def test_a_checkpoint_of_other_settings_or_without_a_record_is_deleted_with_the_attempts_files(tmp_path):
    checkpoint, samples = tmp_path / "checkpoints", tmp_path / "samples_step_4.jsonl"
    claim_checkpoint(checkpoint, "a", job="test")
    checkpoint.mkdir()
    samples.write_text("{}\n")
    claim = claim_checkpoint(checkpoint, "b", job="test", attempt_files=[samples])
    assert not claim.resumable and not checkpoint.exists() and not samples.exists()
    assert "changed" in claim.summary()["restarted_because"]

    checkpoint.mkdir()
    record_path(checkpoint).unlink()
    claim = claim_checkpoint(checkpoint, "b", job="test")
    assert not claim.resumable and not checkpoint.exists() and "no record" in claim.restarted_because


def test_a_finished_run_deletes_its_checkpoint_or_keeps_it_never_to_be_resumed(tmp_path):
    checkpoint = tmp_path / "partial.jsonl"
    claim = claim_checkpoint(checkpoint, "a", job="test")
    checkpoint.write_text("{}\n")
    claim.finish()
    assert not checkpoint.exists() and not record_path(checkpoint).exists()

    claim = claim_checkpoint(checkpoint, "a", job="test")
    checkpoint.write_text("{}\n")
    claim.finish(keep=True)
    assert checkpoint.exists()
    rerun = claim_checkpoint(checkpoint, "a", job="test")  # what --forcerun of a finished run finds
    assert not rerun.resumable and not checkpoint.exists() and "completed run" in rerun.restarted_because
