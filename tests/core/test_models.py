"""The model loader: hub-style loading from local dirs, multimodal checkpoints, clear errors."""

from __future__ import annotations

import pytest
from transformers import AutoModelForImageTextToText, ViTConfig, ViTModel

from ablation.models import load_causal_lm, load_tokenizer
from ablation.prefill.scoring import score_continuations
from tests.conftest import build_model, random_requests


def test_a_missing_model_path_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        load_causal_lm(str(missing))
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        load_tokenizer(str(missing))


def test_a_model_that_is_not_a_causal_lm_is_refused(tmp_path):
    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a causal language model"):
        load_causal_lm(str(tmp_path))


def test_an_unknown_dtype_names_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="bfloat16"):
        load_causal_lm(str(tmp_path), dtype="fp8")


def test_a_multimodal_ministral3_checkpoint_loads_through_its_text_head(tmp_path):
    original = build_model("ministral3")
    original.save_pretrained(tmp_path)
    loaded = load_causal_lm(str(tmp_path))
    assert isinstance(loaded, AutoModelForImageTextToText._model_mapping[type(loaded.config)])
    requests = random_requests()
    for mode in ("causal", "prefill_bidir", "full_bidir"):
        reloaded = score_continuations(loaded, requests, mode=mode)
        expected = score_continuations(original, requests, mode=mode)
        assert [s.logprob for s in reloaded] == pytest.approx([s.logprob for s in expected], abs=1e-5)


def test_a_plain_decoder_loads_as_a_causal_lm(tmp_path):
    build_model("llama").save_pretrained(tmp_path)
    model = load_causal_lm(str(tmp_path), attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    assert not model.training
