"""Source legibility: how much of its input each hidden-state layer of a model still carries.

A translator can pass on only what the source's states hold. For every layer, a ridge readout
(closed form, so deterministic and cheap) is fitted from the states of the training prompts'
tokens to those tokens' ids, then scored on the evaluation prompts: the share of their tokens
whose id it recovers, over all tokens and over the number tokens (all digits) that GSM8K's
answers are computed from. A layer whose numbers are illegible cannot hand a question's numbers
to the target, whatever the translator; the embeddings (layer 0) are the reference.

The statistics are streamed (a Gram matrix and a token-sum matrix per layer, in float64 on the
host: about 10 GB for a 7B source's 33 layers over 300 prompts), never every token's states at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ablation.bridge.batches import tokenize_source
from ablation.bridge.frozen import FrozenLM

READOUT_TRAIN_PROMPTS = 300  # training prompts the readout is fitted on (the first ones)
RIDGE = 1e-4  # penalty per token on the standardised features
BATCH_SIZE = 25


def is_number_token(text: str) -> bool:
    return text.strip().isdigit()


def source_batches(frozen: FrozenLM, prompts: list[str], max_tokens: int, batch_size: int = BATCH_SIZE) -> list[tuple[dict, torch.Tensor]]:
    """The prompts as the source reads them, batch by batch, each with where its real, non-special tokens are [B, S]."""
    special = torch.tensor(sorted(frozen.tokenizer.all_special_ids))
    batches = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenize_source(frozen.tokenizer, prompts[start : start + batch_size], max_tokens)
        batches.append((batch, batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], special)))
    return batches


def token_states(frozen: FrozenLM, batches: list[tuple[dict, torch.Tensor]]) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    """Per batch: every layer's states at its real, non-special tokens ([n, D] each, on CPU) and their ids [n]."""
    for batch, keep in batches:
        with torch.no_grad():
            inputs = {name: tensor.to(frozen.model.device) for name, tensor in batch.items()}
            output = frozen.model(**inputs, output_hidden_states=True, logits_to_keep=1, use_cache=False)
        yield [states.cpu()[keep] for states in output.hidden_states], batch["input_ids"][keep]


class RidgeReadout:
    """Least-squares readout of token ids from one layer's states, fitted from streamed sums."""

    def __init__(self, width: int, classes: torch.Tensor):
        self.classes = classes  # [C] the token ids seen in training, sorted
        self.gram = torch.zeros(width + 1, width + 1, dtype=torch.float64)  # [x, 1]ᵀ[x, 1]
        self.sums = torch.zeros(width + 1, len(classes), dtype=torch.float64)  # [x, 1]ᵀ one_hot(ids)

    def add(self, states: torch.Tensor, ids: torch.Tensor) -> None:
        x = torch.cat([states.double(), torch.ones(len(states), 1, dtype=torch.float64)], dim=1)
        self.gram += x.T @ x
        self.sums.index_add_(1, torch.searchsorted(self.classes, ids), x.T)

    def fit(self) -> None:
        """Ridge on standardised features, solved from the sums alone: W = (ZᵀZ + λ·n·I)⁻¹ ZᵀY."""
        count = self.gram[-1, -1]
        self.mean = self.gram[:-1, -1] / count  # [D]
        covariance = self.gram[:-1, :-1] - count * torch.outer(self.mean, self.mean)  # Σ (x − μ)(x − μ)ᵀ
        self.scale = (covariance.diagonal() / count).clamp_min(1e-12).sqrt()  # [D]
        class_counts = self.sums[-1]  # [C]
        centred_sums = self.sums[:-1] - torch.outer(self.mean, class_counts)  # (X − μ)ᵀY
        z_gram = covariance / torch.outer(self.scale, self.scale)
        z_gram += RIDGE * count * torch.eye(len(z_gram), dtype=torch.float64)
        self.weights = torch.linalg.solve(z_gram, centred_sums / self.scale[:, None])  # [D, C]
        self.bias = class_counts / count  # [C]: the readout's mean, its features being centred

    def predict(self, states: torch.Tensor) -> torch.Tensor:
        z = (states.double() - self.mean) / self.scale
        return self.classes[(z @ self.weights + self.bias).argmax(dim=1)]


def layer_legibility(frozen: FrozenLM, train_prompts: list[str], eval_prompts: list[str], max_tokens: int) -> dict[str, dict]:
    """Per hidden-state layer ("0" the embeddings): the share of the eval prompts' tokens, and of their
    number tokens (None without any), whose ids a readout fitted on ``train_prompts`` recovers."""
    train_batches = source_batches(frozen, train_prompts[:READOUT_TRAIN_PROMPTS], max_tokens)
    seen = torch.cat([batch["input_ids"][keep] for batch, keep in train_batches]).unique()  # sorted
    readouts: list[RidgeReadout] = []
    for layers, ids in token_states(frozen, train_batches):
        readouts = readouts or [RidgeReadout(states.shape[1], seen) for states in layers]
        for readout, states in zip(readouts, layers):
            readout.add(states, ids)
    for readout in readouts:
        readout.fit()
    number_ids = torch.tensor([i for i in range(len(frozen.tokenizer)) if is_number_token(frozen.tokenizer.decode([i]))])
    hits = torch.zeros(len(readouts), dtype=torch.long)
    number_hits = torch.zeros(len(readouts), dtype=torch.long)
    total = numbers = 0
    for layers, ids in token_states(frozen, source_batches(frozen, eval_prompts, max_tokens)):
        is_number = torch.isin(ids, number_ids)
        total, numbers = total + len(ids), numbers + int(is_number.sum())
        for layer, (readout, states) in enumerate(zip(readouts, layers)):
            correct = readout.predict(states) == ids
            hits[layer] += int(correct.sum())
            number_hits[layer] += int(correct[is_number].sum())
    return {
        str(layer): {
            "tokens": int(hits[layer]) / total,
            "number_tokens": int(number_hits[layer]) / numbers if numbers else None,
        }
        for layer in range(len(readouts))
    }
