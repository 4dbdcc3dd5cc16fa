"""Regression at micro scale: prefill_bidir rescores an item whose prompt has an order, and no other item.

A mask that silently stayed causal would leave the route item's scores as they were (the tiny
study would show no drop and nothing else would flag it); a mask that leaked into the scored
answer would also move the scores of an item whose prompt has nothing to reorder. Both checks go
through the evaluation path the study uses: lm-eval requests, ``masked_hf``'s tokenisation and the
scorer, on the micro world's pre-trained model.
"""

from __future__ import annotations

import json

import pytest
from lm_eval.api.instance import Instance

from ablation.prefill.lm_eval_model import MaskedHFLM

CHANGED = 1e-3  # a rescored item's scores move by more than this (a mask that stayed causal: ~1e-6)
UNCHANGED = 1e-5  # float noise of two batched forward passes


def loglikelihoods(model_dir, mask: str, context: str, continuations: list[str]) -> list[float]:
    model = MaskedHFLM(str(model_dir), mask=mask, batch_size=4)
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=index)
        for index, continuation in enumerate(continuations)
    ]
    return [logprob for logprob, _ in model.loglikelihood(requests, disable_tqdm=True)]


@pytest.fixture(scope="module")
def route_item(micro_world):
    """The first route item of the micro world's tiny_hellaswag: which place follows a given stop."""
    doc = json.loads((micro_world / "tasks" / "tiny_hellaswag.jsonl").read_text().splitlines()[0])
    return doc["query"], [" " + choice for choice in doc["choices"]]


def test_prefill_bidir_rescores_an_item_whose_prompt_has_an_order(micro_world, route_item):
    context, continuations = route_item
    causal = loglikelihoods(micro_world / "base_model", "causal", context, continuations)
    ablated = loglikelihoods(micro_world / "base_model", "prefill_bidir", context, continuations)
    # the barely trained micro model attends almost uniformly, so some choices move little; the item moves
    assert max(abs(a - c) for a, c in zip(ablated, causal)) > CHANGED


def test_prefill_bidir_leaves_an_item_with_nothing_to_reorder_as_it_was(micro_world, route_item):
    # an empty prompt: lm-eval scores the answer after the single prefix token, so there is no order to remove
    _, continuations = route_item
    model_dir = micro_world / "base_model"
    causal = loglikelihoods(model_dir, "causal", "", continuations)
    assert loglikelihoods(model_dir, "prefill_bidir", "", continuations) == pytest.approx(causal, abs=UNCHANGED)
    # the check can see a leak: full_bidir lets the answer's tokens see each other, and moves the same item
    leaky = loglikelihoods(model_dir, "full_bidir", "", continuations)
    assert any(abs(leak - c) > CHANGED for leak, c in zip(leaky, causal))
