"""Source legibility: a ridge readout of token ids from a layer's states, fitted from streamed sums."""

import json

import pytest
import torch

from ablation.bridge.frozen import load_frozen
from ablation.bridge.legibility import RidgeReadout, is_number_token, layer_legibility
from ablation.bridge.prompts import task_prompt

CLASSES = torch.arange(10, 50)  # 40 token ids


def coded_states(ids: torch.Tensor, codes: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """A state per token: its id's code vector plus Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    return codes[ids - CLASSES[0]] + noise * torch.randn(len(ids), codes.shape[1], generator=generator)


def draws(count: int, seed: int) -> torch.Tensor:
    return CLASSES[torch.randint(len(CLASSES), (count,), generator=torch.Generator().manual_seed(seed))]


@pytest.fixture
def codes():
    return torch.randn(len(CLASSES), 64, generator=torch.Generator().manual_seed(0))


def test_states_that_encode_their_tokens_are_read_back(codes):
    train, test = draws(2000, 1), draws(500, 2)
    readout = RidgeReadout(64, CLASSES)
    readout.add(coded_states(train, codes, 0.1, 3), train)
    readout.fit()
    assert torch.equal(readout.predict(coded_states(test, codes, 0.1, 4)), test)


def test_states_unrelated_to_their_tokens_read_back_no_better_than_chance():
    train, test = draws(2000, 1), draws(2000, 2)
    generator = torch.Generator().manual_seed(5)
    readout = RidgeReadout(64, CLASSES)
    readout.add(torch.randn(len(train), 64, generator=generator), train)
    readout.fit()
    accuracy = (readout.predict(torch.randn(len(test), 64, generator=generator)) == test).float().mean()
    assert accuracy < 3 / len(CLASSES)


def test_streamed_sums_fit_the_same_readout_as_one_batch(codes):
    train, test = draws(600, 1), draws(200, 2)
    states = coded_states(train, codes, 2.0, 3)  # noisy enough that the readout makes mistakes
    whole, streamed = RidgeReadout(64, CLASSES), RidgeReadout(64, CLASSES)
    whole.add(states, train)
    streamed.add(states[:250], train[:250])
    streamed.add(states[250:], train[250:])
    for readout in (whole, streamed):
        readout.fit()
    assert torch.allclose(whole.weights, streamed.weights)
    probe = coded_states(test, codes, 2.0, 4)
    assert torch.equal(whole.predict(probe), streamed.predict(probe))
    assert 0.2 < (whole.predict(probe) == test).float().mean() < 1.0


def test_number_tokens_are_all_digits():
    assert is_number_token(" 12") and is_number_token("7")
    assert not is_number_token(" ") and not is_number_token("12a") and not is_number_token("####")


def test_every_layer_of_a_model_gets_its_legibility(micro_bridge_world):
    source = load_frozen("src", str(micro_bridge_world["source"]), None, dtype="float32", device="cpu")
    rows = {split: [json.loads(line) for line in (micro_bridge_world["data"] / "gsm8k" / f"{split}.jsonl").open()] for split in ("train", "test")}
    prompts = {split: [task_prompt("gsm8k", row) for row in split_rows] for split, split_rows in rows.items()}
    legibility = layer_legibility(source, prompts["train"], prompts["test"], max_tokens=256)
    assert list(legibility) == [str(layer) for layer in range(source.model.config.num_hidden_layers + 1)]
    for layer in legibility.values():
        assert 0.0 <= layer["tokens"] <= 1.0 and 0.0 <= layer["number_tokens"] <= 1.0  # GSM8K prompts hold numbers
    assert legibility == layer_legibility(source, prompts["train"], prompts["test"], max_tokens=256)  # deterministic
    no_numbers = layer_legibility(source, prompts["train"], ["Where does Mia work?"], max_tokens=256)
    assert all(layer["number_tokens"] is None for layer in no_numbers.values())


def test_a_source_that_has_read_digits_keeps_the_numbers_legible(micro_bridge_world, tmp_path):
    """The bridge's own source is pre-trained on the bridge corpus, which is full of numbers: past its
    embeddings a closed-form readout still recovers most of the questions' number tokens (the prefill
    study's model, whose corpus has no digits, kept 0.02 to 0.05 of them on the tiny default)."""
    from ablation.world.pretrain import pretrain_model
    from ablation.world.corpus import DOCUMENT_SEPARATOR

    shape = dict(hidden_size=128, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000.0)
    training = dict(max_steps=30, batch_size=8, seq_len=128, learning_rate=3e-3, warmup_steps=3, weight_decay=0.01)
    data = micro_bridge_world["data"]
    pretrain_model(data / "corpus.txt", data / "tokenizer", tmp_path / "source", seed=0, model=shape, training=training,
                   architecture="mistral", document_separator=DOCUMENT_SEPARATOR)  # fmt: skip
    source = load_frozen("src", str(tmp_path / "source"), None, dtype="float32", device="cpu")
    rows = {split: [json.loads(line) for line in (data / "gsm8k" / f"{split}.jsonl").open()] for split in ("train", "test")}
    prompts = {split: [task_prompt("gsm8k", row) for row in split_rows] for split, split_rows in rows.items()}
    legibility = layer_legibility(source, prompts["train"], prompts["test"], max_tokens=256)
    assert legibility["1"]["number_tokens"] >= 0.5
