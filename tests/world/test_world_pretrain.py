"""Pre-training the tiny model at micro sizes: loadable output, falling loss, atomic writes."""

import json

import pytest

from ablation.world.data import build_world_data
from ablation.world.pretrain import pretrain_model
from ablation.world.tokenizer import train_tokenizer

MODEL = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rope_theta=1000.0,
)
TRAINING = dict(max_steps=30, batch_size=4, seq_len=64, learning_rate=3e-3, warmup_steps=3, weight_decay=0.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    build_world_data(root / "world", seed=0, corpus_documents=300, eval_examples_per_task=4, instruction_examples=4)
    train_tokenizer(root / "world" / "corpus.txt", root / "tok", vocab_size=400)
    return root / "world" / "corpus.txt", root / "tok"


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    corpus, tok = inputs
    out = tmp_path_factory.mktemp("model") / "base"
    summary = pretrain_model(corpus, tok, out, seed=0, model=MODEL, training=TRAINING)
    return out, summary


def test_output_loads_and_runs(trained):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = trained
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "mistral"
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    assert model.config.sliding_window is None
    assert model.config.rope_parameters["rope_theta"] == MODEL["rope_theta"]
    assert tokenizer.model_max_length == MODEL["max_position_embeddings"]
    ids = torch.tensor([tokenizer.encode("Mia lives in")])
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_summary_and_loss_falls(trained):
    out, summary = trained
    assert json.loads((out / "pretrain_summary.json").read_text()) == summary
    assert summary["final_train_loss"] < summary["initial_train_loss"]
    assert summary["steps"] == TRAINING["max_steps"]
    assert summary["tokens_seen"] == TRAINING["max_steps"] * TRAINING["batch_size"] * TRAINING["seq_len"]
    assert summary["parameters"] > 0 and summary["wall_seconds"] > 0


def test_no_temporary_dirs_left(trained):
    out, _ = trained
    assert sorted(p.name for p in out.parent.iterdir()) == ["base"]
    assert not (out / "_trainer").exists()


def test_same_seed_same_weights(inputs, trained, tmp_path):
    from safetensors.torch import load_file

    corpus, tok = inputs
    out, _ = trained
    pretrain_model(corpus, tok, tmp_path / "again", seed=0, model=MODEL, training=TRAINING)
    first, second = load_file(out / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("model", "hidden_size", 0),
        ("model", "num_key_value_heads", 3),
        ("model", "max_position_embeddings", 16),
        ("model", "rope_theta", 0.0),
        ("training", "max_steps", -1),
        ("training", "learning_rate", 0.0),
        ("training", "warmup_steps", -2),
        ("training", "weight_decay", -0.1),
        ("training", "batch_size", "8"),
    ],
)
def test_bad_arguments_raise(inputs, tmp_path, section, key, value):
    corpus, tok = inputs
    args = {"model": dict(MODEL), "training": dict(TRAINING)}
    args[section][key] = value
    with pytest.raises(ValueError, match=key):
        pretrain_model(corpus, tok, tmp_path / "m", seed=0, **args)
    assert not (tmp_path / "m").exists()


def test_missing_and_unknown_keys_raise(inputs, tmp_path):
    corpus, tok = inputs
    with pytest.raises(ValueError, match="hidden_size"):
        pretrain_model(corpus, tok, tmp_path / "m", seed=0, model={**MODEL, "hidden_size": None}, training=TRAINING)
    model = {k: v for k, v in MODEL.items() if k != "num_hidden_layers"}
    with pytest.raises(ValueError, match="num_hidden_layers"):
        pretrain_model(corpus, tok, tmp_path / "m", seed=0, model=model, training=TRAINING)
    with pytest.raises(ValueError, match="dropout"):
        pretrain_model(corpus, tok, tmp_path / "m", seed=0, model=MODEL, training={**TRAINING, "dropout": 0.1})
