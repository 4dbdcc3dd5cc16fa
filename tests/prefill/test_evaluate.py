"""Zero-shot evaluation through lm-eval: equivalence with stock lm-eval, metrics files and bad input."""

from __future__ import annotations

import json

import lm_eval
import pytest
import torch
from lm_eval.utils import hash_string

from ablation.prefill.evaluate import add_per_token_accuracy, evaluate_model, summarise_results
from ablation.prefill.lm_eval_model import MaskedHFLM
from ablation.models import load_causal_lm, load_tokenizer
from ablation.prefill.original.scorer import OriginalScorerLM
from ablation.prefill.task_sets import task_manager
from ablation.prefill.study import TINY_TASKS


def run_lm_eval(model, world, tasks=TINY_TASKS):
    return lm_eval.simple_evaluate(model=model, tasks=list(tasks), task_manager=task_manager(world / "tasks"), log_samples=True)


def loglikelihoods(results, task):
    return [response[0][0] for sample in results["samples"][task] for response in sample["resps"]]


def test_causal_mode_gives_stock_lm_eval_results(micro_world):
    ours = run_lm_eval(MaskedHFLM(str(micro_world / "base_model"), mask="causal", batch_size=8), micro_world)
    stock = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={micro_world / 'base_model'},dtype=float32",
        device="cpu",
        batch_size=8,
        tasks=list(TINY_TASKS),
        task_manager=task_manager(micro_world / "tasks"),
        log_samples=True,
    )
    for task in TINY_TASKS:
        assert ours["results"][task]["acc,none"] == stock["results"][task]["acc,none"]
        assert loglikelihoods(ours, task) == pytest.approx(loglikelihoods(stock, task), abs=1e-4)


def test_the_tiny_tasks_are_read_without_indexing_lm_evals_registry(micro_world):
    tiny = task_manager(micro_world / "tasks", list(TINY_TASKS))
    assert set(TINY_TASKS) <= set(tiny.task_index) and "hellaswag" not in tiny.task_index
    # a task that only lm-eval's registry has brings the registry back
    assert "hellaswag" in task_manager(micro_world / "tasks", [*TINY_TASKS, "hellaswag"]).task_index
    # and the tiny tasks score the same through either manager
    model = MaskedHFLM(str(micro_world / "base_model"), mask="causal", batch_size=8)
    lean = lm_eval.simple_evaluate(model=model, tasks=list(TINY_TASKS), task_manager=tiny, log_samples=True)
    full = run_lm_eval(model, micro_world)
    for task in TINY_TASKS:
        assert lean["results"][task]["acc,none"] == full["results"][task]["acc,none"]
        assert loglikelihoods(lean, task) == loglikelihoods(full, task)


def test_shared_prefill_and_single_pass_give_the_same_numbers(micro_world):
    model = str(micro_world / "base_model")
    shared = run_lm_eval(MaskedHFLM(model, mask="prefill_bidir", scoring="shared_prefill"), micro_world)
    single = run_lm_eval(MaskedHFLM(model, mask="prefill_bidir", scoring="single_pass"), micro_world)
    for task in TINY_TASKS:
        assert loglikelihoods(shared, task) == pytest.approx(loglikelihoods(single, task), abs=1e-4)


def test_full_bidir_reproduces_the_original_scorer(micro_world):
    model = str(micro_world / "base_model")
    ours = run_lm_eval(MaskedHFLM(model, mask="full_bidir", batch_size=8), micro_world, TINY_TASKS[:2])
    original_scorer = OriginalScorerLM(load_causal_lm(model), tokenizer=load_tokenizer(model), bidirectional=True)
    original = run_lm_eval(original_scorer, micro_world, TINY_TASKS[:2])
    for task in TINY_TASKS[:2]:
        assert loglikelihoods(ours, task) == pytest.approx(loglikelihoods(original, task), abs=1e-4)


def test_metrics_file_holds_numbers_and_provenance(micro_world, tmp_path):
    config = {"experiment": "test"}
    metrics = evaluate_model(
        model_id=str(micro_world / "base_model"),
        mask="prefill_bidir",
        output_dir=tmp_path / "eval",
        config=config,
        task_set="tiny",
        tasks_dir=micro_world / "tasks",
        limit=5,
        seed=3,
    )
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert set(on_disk["tasks"]) == set(TINY_TASKS)
    for task, numbers in on_disk["tasks"].items():
        assert numbers["n"] == 5
        assert 0 <= numbers["acc"] <= 1 and numbers["acc_stderr"] >= 0
        assert numbers["chance"] == pytest.approx(0.5 if task in ("tiny_piqa", "tiny_winogrande") else 0.25)
    assert on_disk["chance_macro"] == pytest.approx(0.35)
    provenance = on_disk["provenance"]
    assert provenance["mask"] == "prefill_bidir" and provenance["seed"] == 3
    assert len(provenance["model"]["local_dir_sha256"]) == 64
    assert provenance["library_versions"]["lm_eval"] and provenance["code_commit"]
    assert provenance["wall_seconds"] > 0 and on_disk["requests_per_second"] > 0
    lines = (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 5 * len(TINY_TASKS)
    assert {json.loads(line)["task"] for line in lines} == set(TINY_TASKS)
    hardware = provenance["hardware"]
    assert hardware["cpu_count"] >= 1 and hardware["torch_build"]["version"] == torch.__version__
    if not torch.cuda.is_available():
        assert [hardware[key] for key in ("gpu_name", "gpu_count", "gpu_memory_bytes", "gpu_driver", "cuda", "cudnn")] == [None] * 6
    # lm-eval's record: its task hashes are those of the logged samples, as its own results files have them
    record = provenance["lm_eval"]
    samples = [json.loads(line) for line in lines]
    for task in TINY_TASKS:
        rows = [row for row in samples if row["task"] == task]
        assert record["task_hashes"][task] == hash_string("".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in rows))
        assert record["task_versions"][task] is not None and record["n_shot"][task] == 0
    assert record["lm_eval_version"] == lm_eval.__version__ and "PyTorch version" in record["pretty_env_info"]


def test_summary_of_hand_made_results():
    def sample(choices):
        return {"arguments": [("context", f" choice {i}") for i in range(choices)]}

    results = {
        "results": {
            "four_way": {"acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.75, "acc_norm_stderr,none": 0.05},
            "two_way": {"acc,none": 0.9, "acc_stderr,none": 0.02},
        },
        "samples": {"four_way": [sample(4)] * 4, "two_way": [sample(2)] * 10},
    }
    summary = summarise_results(results, ("four_way", "two_way"))
    assert summary["tasks"]["four_way"] == {
        "acc": 0.5, "acc_stderr": 0.1, "acc_norm": 0.75, "acc_norm_stderr": 0.05, "n": 4, "chance": 0.25
    }
    assert summary["tasks"]["two_way"]["acc_norm"] is None
    assert summary["macro_acc"] == pytest.approx(0.7)
    assert summary["macro_acc_norm"] == pytest.approx((0.75 + 0.9) / 2)
    assert summary["chance_macro"] == pytest.approx(0.375)


def test_per_token_accuracy_normalises_by_each_choices_token_count():
    """The original's metric: a long choice with a low sum but a high mean per token wins."""
    arguments = [("q", " short"), ("q", " a much longer choice")]
    samples = [
        {"arguments": arguments, "resps": [[(-3.0, False)], [(-4.0, False)]], "target": 1},  # means -3.0, -1.0
        {"arguments": arguments, "resps": [[(-1.0, False)], [(-8.0, False)]], "target": 1},  # means -1.0, -2.0
    ]
    results = {"results": {"task": {"acc,none": 0.0, "acc_stderr,none": 0.0}}, "samples": {"task": samples}}
    add_per_token_accuracy(results, ("task",), {arguments[0]: 1, arguments[1]: 4})
    assert [sample["continuation_tokens"] for sample in samples] == [[1, 4], [1, 4]]
    assert [sample["acc_per_token"] for sample in samples] == [1.0, 0.0]
    summary = summarise_results(results, ("task",))
    assert summary["tasks"]["task"]["acc_per_token"] == 0.5
    assert summary["tasks"]["task"]["acc_per_token_stderr"] == pytest.approx(0.5)
    assert summary["macro_acc_per_token"] == 0.5


def test_an_unknown_mask_names_the_allowed_modes_and_writes_nothing(micro_world, tmp_path):
    with pytest.raises(ValueError, match="causal, prefill_bidir, full_bidir"):
        evaluate_model(
            model_id=str(micro_world / "base_model"), mask="bidir", output_dir=tmp_path / "out", config={},
            task_set="tiny", tasks_dir=micro_world / "tasks",
        )
    assert not (tmp_path / "out").exists()


def test_an_unknown_task_names_the_allowed_tasks(micro_world, tmp_path):
    with pytest.raises(ValueError, match="tiny_hellaswag"):
        evaluate_model(
            model_id=str(micro_world / "base_model"), mask="causal", output_dir=tmp_path / "out", config={},
            task_set="tiny", tasks=["tiny_mmlu"], tasks_dir=micro_world / "tasks",
        )
    assert not (tmp_path / "out").exists()


def test_a_missing_model_path_fails_before_anything_is_written(micro_world, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        evaluate_model(
            model_id=str(tmp_path / "nowhere"), mask="causal", output_dir=tmp_path / "out", config={},
            task_set="tiny", tasks_dir=micro_world / "tasks",
        )
    assert not (tmp_path / "out").exists()
