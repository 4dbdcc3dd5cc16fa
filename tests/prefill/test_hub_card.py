"""The model card that goes with a fine-tune uploaded to the Hub, rendered locally (no network)."""

from __future__ import annotations

import json

from huggingface_hub import ModelCard

from ablation.prefill.finetune.hub import run_card
from ablation.layout import eval_metrics_path, finetune_dir
from ablation.provenance import directory_hash
from tests.prefill.study_files import ACCS, make_metrics


def finished_summary(model: dict) -> dict:
    return {
        "run": "stage3b_prefix_lm", "description": "Stage 3B: prefix-LM fine-tune.", "train_mask": "prefill_bidir",
        "max_steps": 150, "steps_run": 120, "stop_reason": "auto_stop_plateau", "final_eval_loss": 1.2345,
        "train_records": 4000,
        "provenance": {"model": model, "code_commit": "0123abc", "library_code_sha256": "f" * 64},
    }  # fmt: skip


def final_weights(run_dir, weights: str):
    """A stand-in ``final/`` directory whose content hash the evaluations' provenance names."""
    final = run_dir / "final"
    final.mkdir(parents=True, exist_ok=True)
    (final / "model.safetensors").write_text(weights)
    return final


def write_evaluation(results, mask: str, final) -> None:
    """Metrics of the run under ``mask``, stamped as scoring ``final`` as it is now."""
    metrics = make_metrics(ACCS["stage4_stage3b_prefix_lm"], mask=mask)
    metrics["provenance"]["model"] = {"id": str(final), "local_dir_sha256": directory_hash(final)}
    path = eval_metrics_path(results, "stage3b_prefix_lm", mask)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))


def test_the_card_names_base_model_dataset_mask_steps_commit_and_the_metrics_on_disk(tmp_path):
    results = tmp_path / "results"
    final = final_weights(finetune_dir(results, "stage3b_prefix_lm"), "weights")
    write_evaluation(results, "prefill_bidir", final)
    model = {"id": "mistralai/Ministral-3-3B-Instruct-2512", "revision": "main", "resolved_commit": "c0ffee"}
    card = run_card(finished_summary(model), run_name="stage3b_prefix_lm", dataset="yahma/alpaca-cleaned", results_dir=results, final_dir=final)
    card.save(tmp_path / "README.md")

    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.base_model == "mistralai/Ministral-3-3B-Instruct-2512"
    assert loaded.data.datasets == ["yahma/alpaca-cleaned"] and "train-mask-prefill_bidir" in loaded.data.tags
    text = loaded.text
    assert "at revision `c0ffee`" in text and "Train mask: `prefill_bidir`" in text
    assert "Steps: 120 of max 150" in text and "`0123abc`" in text
    assert "Stage 4: ablated (prefill_bidir) after the fine-tune: macro acc 0.5220" in text and "tiny_hellaswag 0.4500" in text
    side_effect = eval_metrics_path(results, "stage3b_prefix_lm", "causal")
    assert f"Side effect: evaluated causal: not yet evaluated at upload; the workflow writes it to `{side_effect}`" in text


def test_metrics_of_an_earlier_fine_tunes_weights_are_not_put_on_the_card(tmp_path):
    results = tmp_path / "results"
    run_dir = finetune_dir(results, "stage3b_prefix_lm")
    write_evaluation(results, "prefill_bidir", final_weights(run_dir, "the earlier run's weights"))
    final = final_weights(run_dir, "the rerun's weights")
    model = {"id": "mistralai/Ministral-3-3B-Instruct-2512", "revision": "main", "resolved_commit": "c0ffee"}
    card = run_card(finished_summary(model), run_name="stage3b_prefix_lm", dataset="yahma/alpaca-cleaned", results_dir=results, final_dir=final)
    stage4 = eval_metrics_path(results, "stage3b_prefix_lm", "prefill_bidir")
    assert f"after the fine-tune: not yet evaluated at upload; the workflow writes it to `{stage4}` (the metrics there are of earlier weights)." in card.text
    assert "macro acc" not in card.text


def test_a_local_base_model_and_dataset_stay_out_of_the_hub_metadata(tmp_path):
    model = {"id": str(tmp_path / "base_model"), "local_dir_sha256": "ab" * 32}
    card = run_card(finished_summary(model), run_name="stage3b_prefix_lm", dataset=str(tmp_path / "instructions.jsonl"), results_dir=tmp_path,
                    final_dir=final_weights(tmp_path, "weights"))
    assert card.data.base_model is None and card.data.datasets is None
    assert f"(local directory, sha256 {'ab' * 32})" in card.text and "(local file)" in card.text
