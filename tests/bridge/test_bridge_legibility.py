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
