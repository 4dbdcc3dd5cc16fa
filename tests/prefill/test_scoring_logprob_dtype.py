"""``eval.logprob_dtype``: ``model`` scores as the original's eval_mcq.py did (log_softmax of the bf16
logits, the continuation's sum in bf16); ``float32`` (default) upcasts. Tiny models on CPU."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from ablation.config import ConfigError, validate_config
from ablation.prefill.evaluate import evaluate_model
from ablation.prefill.original.scorer import original_score
from ablation.prefill.scoring import ScoringRequest, score_continuations
from tests.conftest import build_model, random_requests

REPOSITORY = Path(__file__).resolve().parents[2]
MODES = [
    ("causal", "single_pass"),
    ("causal", "shared_prefill"),
    ("prefill_bidir", "single_pass"),
    ("prefill_bidir", "shared_prefill"),
    ("full_bidir", "single_pass"),
]


def scored_with_logits(model, request: ScoringRequest, mode: str, strategy: str, logprob_dtype: str):
    """Our score of one request, and the logits of the continuation's positions its forwards returned."""
    captured = []
    hook = model.register_forward_hook(lambda module, args, output: captured.append(output.logits.clone()))
    try:
        score = score_continuations(model, [request], mode=mode, strategy=strategy, logprob_dtype=logprob_dtype)[0]
    finally:
        hook.remove()
    if strategy == "single_pass":
        (logits,) = captured
        start = len(request.context) - 1
        return score, logits[0, start : start + len(request.continuation)]
    return score, torch.cat([captured[0][0, -1:], *(decoded[0] for decoded in captured[1:])])  # prefill, then decode


def eval_mcq_style(logits: torch.Tensor, continuation: tuple[int, ...]) -> tuple[float, list[float]]:
    """eval_mcq.py's sequence_logprob on these logits: log_softmax in their dtype, gather, .sum(), float()."""
    token_log_probs = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(continuation)[:, None]).squeeze(-1)
    return float(token_log_probs.sum().item()), token_log_probs.tolist()


@pytest.mark.parametrize("architecture", ["mistral", "ministral3"])
@pytest.mark.parametrize(("mode", "strategy"), MODES)
def test_model_dtype_rounds_as_the_original_on_a_bf16_model(architecture, mode, strategy):
    model = build_model(architecture).to(torch.bfloat16)
    rounded_away = False
    for request in random_requests():
        score, logits = scored_with_logits(model, request, mode, strategy, "model")
        assert logits.dtype == torch.bfloat16
        total, token_logprobs = eval_mcq_style(logits, request.continuation)
        assert score.logprob == total and list(score.token_logprobs) == token_logprobs  # exactly
        assert torch.tensor(total, dtype=torch.bfloat16).item() == total  # a bf16 value

        upcast, logits = scored_with_logits(model, request, mode, strategy, "float32")
        expected = logits.float().log_softmax(-1).gather(-1, torch.tensor(request.continuation)[:, None]).squeeze(-1)
        assert list(upcast.token_logprobs) == expected.tolist()
        assert upcast.logprob == sum(expected.tolist())
        rounded_away |= upcast.logprob != score.logprob
    assert rounded_away, "bf16 rounding must change some total, else the test proves nothing"


def eval_mcq_sequence_logprob(model, context: tuple[int, ...], continuation: tuple[int, ...]) -> float:
    """The original's per-choice total, written plainly: one forward of context and continuation, then
    ``eval_mcq_style`` on the logits that predict the continuation (no length normalisation)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context + continuation])).logits[0]
    start = len(context) - 1
    return eval_mcq_style(logits[start : start + len(continuation)], continuation)[0]


def test_the_reference_scorer_follows_the_setting():
    model = build_model("ministral3").to(torch.bfloat16)
    differs = False
    for request in random_requests():
        rounded = original_score(model, request.context, request.continuation, logprob_dtype="model")
        assert rounded.logprob == eval_mcq_sequence_logprob(model, request.context, request.continuation)
        upcast = original_score(model, request.context, request.continuation)
        assert upcast.logprob == pytest.approx(rounded.logprob, abs=0.1 * len(request.continuation))
        differs |= upcast.logprob != rounded.logprob
    assert differs


@pytest.mark.parametrize(("mode", "strategy"), MODES)
def test_both_settings_give_the_same_numbers_on_a_float32_model(mode, strategy):
    model = build_model("mistral")
    requests = random_requests()
    upcast = score_continuations(model, requests, mode=mode, strategy=strategy, batch_size=5)
    rounded = score_continuations(model, requests, mode=mode, strategy=strategy, batch_size=5, logprob_dtype="model")
    assert rounded == upcast
    bidirectional = mode == "full_bidir"
    for request in requests[:3]:
        reference = original_score(model, request.context, request.continuation, bidirectional)
        assert original_score(model, request.context, request.continuation, bidirectional, "model") == reference


class BigramLM(torch.nn.Module):
    """A bf16 LM whose logits are a fixed table row per input token: hand-made log-probabilities."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table, dtype=torch.bfloat16), requires_grad=False)

    device = property(lambda self: self.table.device)
    dtype = property(lambda self: self.table.dtype)

    def forward(self, input_ids, logits_to_keep=0, **_):
        logits = self.table[input_ids]
        cache = SimpleNamespace(reorder_cache=lambda rows: None)  # the logits need no cache
        return SimpleNamespace(logits=logits[:, -logits_to_keep:], past_key_values=cache)


# After token 0, choice A (1,) and choice B (2, 3): log-probs -2.8705 and -2.8658 in float32;
# in bf16 A is -2.875 and B's tokens -2.25 and -0.62109375, whose sum -2.87109375 rounds to -2.875.
NEAR_TIE = BigramLM([[0, -2, -1.375, 0], [0, 0, 0, 0], [0, 0, 0, 1.25], [0, 0, 0, 0]])
CHOICES = [ScoringRequest((0,), (1,)), ScoringRequest((0,), (2, 3))]


@pytest.mark.parametrize("strategy", ["single_pass", "shared_prefill"])
def test_a_near_tie_is_a_tie_won_by_the_first_choice_only_when_rounded(strategy):
    upcast = [s.logprob for s in score_continuations(NEAR_TIE, CHOICES, mode="causal", strategy=strategy)]
    assert upcast == pytest.approx([-2.8705, -2.8658], abs=1e-4)
    assert np.argmax(upcast) == 1

    rounded = score_continuations(NEAR_TIE, CHOICES, mode="causal", strategy=strategy, logprob_dtype="model")
    assert rounded[1].token_logprobs == (-2.25, -0.62109375)  # each rounded, their sum is not yet a tie
    assert [s.logprob for s in rounded] == [-2.875, -2.875]  # the total rounded: tied
    assert np.argmax([s.logprob for s in rounded]) == 0  # lm-eval's argmax, as the original's torch argmax
    assert int(torch.tensor([s.logprob for s in rounded]).argmax()) == 0

    originals = [original_score(NEAR_TIE, c.context, c.continuation, logprob_dtype="model").logprob for c in CHOICES]
    assert originals == [-2.875, -2.875]


def test_the_schema_rejects_an_unknown_value_naming_the_key():
    config = yaml.safe_load((REPOSITORY / "config.yaml").read_text())
    assert validate_config(copy.deepcopy(config))["eval"]["logprob_dtype"] == "float32"  # the default
    config["eval"]["logprob_dtype"] = "bfloat16"
    with pytest.raises(ConfigError, match="logprob_dtype"):
        validate_config(config)
    with pytest.raises(ValueError, match="unknown logprob_dtype 'bf16'; allowed: float32, model"):
        score_continuations(NEAR_TIE, CHOICES, mode="causal", logprob_dtype="bf16")


def test_the_real_preset_scores_as_the_original():
    preset = validate_config(yaml.safe_load((REPOSITORY / "presets" / "ministral-3b.yaml").read_text()))
    assert preset["eval"]["logprob_dtype"] == "model" and preset["model"]["dtype"] == "bfloat16"


def test_metrics_record_the_setting(micro_world, tmp_path):
    metrics = evaluate_model(
        model_id=str(micro_world / "base_model"), mask="causal", output_dir=tmp_path, config={},
        task_set="tiny", tasks_dir=micro_world / "tasks", tasks=["tiny_piqa"], limit=2, logprob_dtype="model",
    )  # fmt: skip
    assert metrics["logprob_dtype"] == "model"
