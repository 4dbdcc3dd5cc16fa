"""The two frozen LMs of a bridge: loaded once, never trained, frozen in this one visible place."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ablation.bridge.generation import prepare_tokenizer
from ablation.models import load_causal_lm, load_tokenizer


@dataclass
class FrozenLM:
    name: str  # the config's short name (bridge.models)
    model_id: str
    revision: str | None
    model: PreTrainedModel | None  # None: only the tokenizer and width loaded, every state read from a cache
    tokenizer: PreTrainedTokenizerBase
    hidden_size: int | None = None  # the config's width, for a FrozenLM loaded without weights

    @property
    def width(self) -> int:
        return self.hidden_size if self.model is None else self.model.get_input_embeddings().weight.shape[1]

    @property
    def embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()


def load_frozen(name: str, model_id: str, revision: str | None, *, dtype: str, device: str) -> FrozenLM:
    """Load a causal LM and its tokenizer, gradients off and in eval mode; errors name the config key."""
    try:
        model = load_causal_lm(model_id, revision=revision, dtype=dtype, device=device)
        tokenizer = load_tokenizer(model_id, revision=revision)
    except (ValueError, OSError) as error:
        raise type(error)(f"config key 'bridge.models.{name}.id': {error}") from error
    model.requires_grad_(False)
    model.eval()
    return FrozenLM(name, model_id, revision, model, prepare_tokenizer(tokenizer))


def load_frozen_tokenizer(name: str, model_id: str, revision: str | None) -> FrozenLM:
    """A frozen LM without its weights (the tokenizer and the config's width): for a source whose
    every state a run reads from the source-state cache, so it never holds the model in memory."""
    from transformers import AutoConfig

    try:
        tokenizer = load_tokenizer(model_id, revision=revision)
        width = AutoConfig.from_pretrained(model_id, revision=revision).get_text_config().hidden_size
    except (ValueError, OSError) as error:
        raise type(error)(f"config key 'bridge.models.{name}.id': {error}") from error
    return FrozenLM(name, model_id, revision, None, prepare_tokenizer(tokenizer), width)


def hidden_states(source: FrozenLM, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """The source's hidden states at ``layer`` (−1 the last, 0 the embeddings): [B, S, D]; no KV cache is built."""
    with torch.no_grad():
        output = source.model(**batch, output_hidden_states=True, logits_to_keep=1, use_cache=False)
    states = output.hidden_states
    if not -len(states) <= layer < len(states):
        raise ValueError(f"bridge run setting 'source_layer': {layer} is outside the source's {len(states)} hidden-state layers")
    return states[layer]
