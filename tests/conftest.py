"""Shared fixtures: tiny random decoder LMs of every architecture the study must handle."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    MistralConfig,
    Qwen2Config,
)
from transformers.models.ministral3 import Ministral3Config
from transformers.models.pixtral import PixtralVisionConfig

import ablation.bridge  # noqa: F401  (validation as the workflow runs it: both studies' checks registered)
from ablation.prefill.scoring import ScoringRequest

VOCAB = 64
SHAPE = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
ARCHITECTURES = ("mistral", "llama", "qwen2", "ministral3")


def text_config(architecture: str, **overrides):
    if architecture == "mistral":
        return MistralConfig(**{**SHAPE, "sliding_window": None, **overrides})
    if architecture == "llama":
        return LlamaConfig(**{**SHAPE, **overrides})
    if architecture == "qwen2":
        # sliding layers from layer 1 on: a model mixing full and sliding-window layers
        return Qwen2Config(**{**SHAPE, "use_sliding_window": True, "sliding_window": 64, "max_window_layers": 1, **overrides})
    if architecture == "ministral3":
        return Ministral3Config(**{**SHAPE, **overrides})
    raise ValueError(architecture)


def build_model(architecture: str, attn_implementation: str = "sdpa", seed: int = 0, **overrides):
    """A random fp32 model; Ministral-3 comes wrapped in its multimodal Mistral-3 checkpoint class."""
    torch.manual_seed(seed)
    if architecture == "ministral3":
        vision = PixtralVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16)
        config = Mistral3Config(text_config=text_config(architecture, **overrides).to_dict(), vision_config=vision.to_dict())
        model = Mistral3ForConditionalGeneration._from_config(config, attn_implementation=attn_implementation)
    else:
        model = AutoModelForCausalLM.from_config(text_config(architecture, **overrides), attn_implementation=attn_implementation)
    return model.eval()


def random_requests(count: int = 12, seed: int = 1, shared_contexts: int = 4) -> list[ScoringRequest]:
    """Multiple-choice-shaped requests: a few contexts, each with continuations of varied lengths."""
    generator = torch.Generator().manual_seed(seed)

    def tokens(low: int, high: int) -> tuple[int, ...]:
        length = int(torch.randint(low, high, (1,), generator=generator))
        return tuple(torch.randint(1, VOCAB, (length,), generator=generator).tolist())

    contexts = [tokens(2, 14) for _ in range(shared_contexts)]
    return [ScoringRequest(contexts[i % shared_contexts], tokens(1, 6)) for i in range(count)]


@pytest.fixture(params=ARCHITECTURES)
def architecture(request):
    return request.param


MICRO_WORLD = dict(seed=7, corpus_documents=300, eval_examples_per_task=12, instruction_examples=60)
MICRO_MODEL = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000.0
)
MICRO_TRAINING = dict(max_steps=8, batch_size=8, seq_len=64, learning_rate=3e-3, warmup_steps=2, weight_decay=0.01)


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory):
    """A micro tiny world (tasks, tokenizer, barely trained model), built once per test session in about a second."""
    from ablation.world.data import build_world_data
    from ablation.world.pretrain import pretrain_model
    from ablation.world.tokenizer import train_tokenizer

    world = tmp_path_factory.mktemp("micro_world")
    build_world_data(world, **MICRO_WORLD)
    train_tokenizer(world / "corpus.txt", world / "tokenizer", vocab_size=400)
    pretrain_model(
        world / "corpus.txt", world / "tokenizer", world / "base_model", seed=7, model=MICRO_MODEL, training=MICRO_TRAINING
    )
    return world


MICRO_BRIDGE_WORLD = dict(seed=7, train_examples=64, test_examples=16, corpus_documents=200)
MICRO_BRIDGE_MODEL = {**MICRO_MODEL, "hidden_size": 24, "intermediate_size": 48}


@pytest.fixture(scope="session")
def micro_bridge_world(micro_world, tmp_path_factory):
    """The micro world plus its bridge tasks and a barely trained Llama-architecture second LM (about a second)."""
    from ablation.bridge.world_data import build_bridge_world_data
    from ablation.world.pretrain import pretrain_model
    from ablation.world.tokenizer import train_tokenizer
    from ablation.world.corpus import DOCUMENT_SEPARATOR

    bridge = tmp_path_factory.mktemp("micro_bridge_world")
    build_bridge_world_data(bridge, **MICRO_BRIDGE_WORLD)
    train_tokenizer(bridge / "corpus.txt", bridge / "tokenizer", vocab_size=350)
    pretrain_model(
        bridge / "corpus.txt", bridge / "tokenizer", bridge / "bridge_model", seed=7, model=MICRO_BRIDGE_MODEL, training=MICRO_TRAINING,
        architecture="llama", document_separator=DOCUMENT_SEPARATOR,
    )
    return {"data": bridge, "source": micro_world / "base_model", "target": bridge / "bridge_model"}
