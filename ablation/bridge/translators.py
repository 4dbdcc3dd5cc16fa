"""The bridge's trainable part: translators from a frozen source LM's hidden states to ``K`` soft
tokens in a frozen target LM's input-embedding space (docs/bridge.md, "Config and pieces").

- ``cross``, :class:`CrossAttentionTranslator`: ``K`` learned queries (orthogonal init) in a
  bottleneck width read the projected source states through ``depth`` blocks of tanh-gated
  cross-attention and a gated SwiGLU FFN, as in a Perceiver resampler / BLIP-2 Q-Former with
  Flamingo's zero-initialised gates; then RMSNorm and a linear map to the target width. With
  ``cross_positions: sinusoidal`` the source states carry their positions, so a query can read
  "the n-th token" (without them it reads a set, and cannot tell the order of the question).
- ``dit``, :class:`DiTTranslator`: a rectified-flow diffusion transformer (Liu et al. 2022, "Flow
  Straight and Fast"; blocks as facebookresearch/DiT ``models.py``, adaLN-Zero) that generates the
  ``K`` tokens conditioned on the pooled source states, with optional classifier-free guidance
  (Ho & Salimans 2022).

Both end in :class:`RMSMatch`: every soft token is rescaled to the median row RMS of the target's
embedding table, so the target reads vectors of the size its own embeddings have.

Both return a :class:`TranslatorOutput` from ``forward(source_states, source_mask, teacher=None,
teacher_mask=None)``; ``source_mask`` is True at real tokens and padded source positions never
influence the output (every row needs at least one real token). :func:`build_translator` makes
one from a bridge run's settings, :func:`decay_parameter_groups` its AdamW parameter groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TRANSLATORS = ("cross", "dit")
DIT_POOLS = ("mean", "attention")
DIT_VARIANTS = ("ours", "original")  # the original script's DiT: ablation.bridge.original_dit
CROSS_FFNS = ("swiglu", "swiglu_two_thirds")  # ours: 4x width, no biases; the original's: Llama's 2/3 of that, with biases
CROSS_POSITIONS = ("none", "sinusoidal")  # the original's memory has no positions; "sinusoidal" adds the source positions
RMS_SCALE_RANGE = (0.25, 4.0)  # the original's clamp on RMSMatch's scale factor
NORM_EPS = 1e-6
FFN_MULTIPLIER = 4  # hidden width of every FFN, in units of its block's width
TIMESTEP_FREQUENCIES = 256  # sinusoidal features of the timestep, as DiT
TIMESTEP_RANGE = 1000.0  # t in [0, 1] is stretched to DiT's [0, 1000] so the sinusoid frequencies resolve it
# Learned token-like tensors (≥2-D, but rows of vectors, not maps): no weight decay, so AdamW does not
# pull the query / position vectors toward zero (the 1-D ones are excluded by their shape anyway).
TOKEN_PARAMETERS = frozenset({"queries", "positions"})


@dataclass
class TranslatorOutput:
    """What a translator hands to the training loop."""

    soft_tokens: Tensor  # [batch, K, target_dim], RMS-matched
    flow_loss: Tensor | None = None  # scalar; dit in training mode with a teacher only


def _setting_error(key: str, value, problem: str) -> ValueError:
    return ValueError(f"bridge run setting {key!r}: {value!r} {problem}")


def _check_choice(key: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _setting_error(key, value, f"is not allowed; allowed: {', '.join(allowed)}")


def soft_token_count(soft_tokens: int, cap: int, source_max_length: int) -> int:
    """K: ``soft_tokens``, or with -1 what the original's Phase 1 got from it: the source tokenizer's
    ``model_max_length`` capped at ``cap`` (its logs say "capping to 2048 tokens": a fixed K for
    every question, the shorter teachers padded, not one soft token per prompt token)."""
    if soft_tokens == -1:
        _check_positive_int("soft_tokens_cap", cap)
        return min(source_max_length, cap)
    _check_soft_tokens(soft_tokens)
    return soft_tokens


def _check_soft_tokens(soft_tokens) -> None:
    if isinstance(soft_tokens, bool) or not isinstance(soft_tokens, int) or soft_tokens <= 0:
        raise _setting_error("soft_tokens", soft_tokens, "is not allowed; must be an integer > 0 (resolve -1 with soft_token_count)")


def _check_positive_int(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _setting_error(key, value, "is not allowed; must be an integer > 0")


def _check_fraction(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _setting_error(key, value, "is not allowed; must be a number in [0, 1]")


def _check_heads(heads_key: str, heads, width_key: str, width) -> None:
    _check_positive_int(heads_key, heads)
    _check_positive_int(width_key, width)
    if width % heads:
        raise _setting_error(heads_key, heads, f"does not divide {width_key} {width}")


class RMSMatch(nn.Module):
    """Rescale every token vector to the median per-row RMS of the target's embedding table."""

    def __init__(self, target_embedding: Tensor, detach: bool = False):
        super().__init__()
        self.detach = detach  # the original: no gradient through a token's own RMS, only through its direction
        row_rms = target_embedding.detach().float().pow(2).mean(dim=-1).sqrt()  # [vocab]
        # torch.median: the lower of the two middle values for an even vocabulary
        self.register_buffer("target_rms", row_rms.median())

    def forward(self, tokens: Tensor) -> Tensor:  # [B, K, D] -> [B, K, D]
        mean_square = tokens.float().pow(2).mean(dim=-1, keepdim=True)  # [B, K, 1]
        if self.detach:
            mean_square = mean_square.detach()
        # clamp before rsqrt: an all-zero token keeps a finite gradient (the clamp then binds at 4)
        scale = (self.target_rms * mean_square.clamp_min(1e-30).rsqrt()).clamp(*RMS_SCALE_RANGE)
        return tokens * scale.to(tokens.dtype)


class SwiGLU(nn.Module):
    """The gated FFN of Llama and Mistral (Shazeer 2020)."""

    def __init__(self, width: int, dropout: float, shape: str = "swiglu"):
        super().__init__()
        _check_choice("cross_ffn", shape, CROSS_FFNS)
        hidden = FFN_MULTIPLIER * width if shape == "swiglu" else 2 * FFN_MULTIPLIER * width // 3
        bias = shape == "swiglu_two_thirds"
        self.gate_and_up = nn.Linear(width, 2 * hidden, bias=bias)
        self.down = nn.Linear(hidden, width, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_and_up(x).chunk(2, dim=-1)  # [B, K, hidden] each
        return self.dropout(self.down(F.silu(gate) * up))


class GatedCrossAttentionBlock(nn.Module):
    """Queries read the source through cross-attention, then an FFN; each branch behind a tanh gate
    that starts at zero, so a new block is the identity and opens only as far as training asks.
    With ``self_attention`` (the original's), the queries first attend to each other, gated alike."""

    def __init__(self, width: int, heads: int, dropout: float, self_attention: bool = False, ffn: str = "swiglu"):
        super().__init__()
        if self_attention:
            self.self_attention_norm = nn.RMSNorm(width, eps=NORM_EPS)
            self.self_attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
            self.self_attention_gate = nn.Parameter(torch.zeros(1))
        else:
            self.self_attention = None
        self.attention_norm = nn.RMSNorm(width, eps=NORM_EPS)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.attention_gate = nn.Parameter(torch.zeros(1))
        self.ffn_norm = nn.RMSNorm(width, eps=NORM_EPS)
        self.ffn = SwiGLU(width, dropout, ffn)
        self.ffn_gate = nn.Parameter(torch.zeros(1))

    def forward(self, queries: Tensor, memory: Tensor, padding: Tensor) -> Tensor:
        # queries [B, K, W], memory [B, S, W], padding [B, S] True where the source is padded
        if self.self_attention is not None:
            normed = self.self_attention_norm(queries)
            mixed, _ = self.self_attention(normed, normed, normed, need_weights=False)  # [B, K, W]
            queries = queries + torch.tanh(self.self_attention_gate) * mixed
        attended, _ = self.attention(
            self.attention_norm(queries), memory, memory, key_padding_mask=padding, need_weights=False
        )  # [B, K, W]
        queries = queries + torch.tanh(self.attention_gate) * attended
        return queries + torch.tanh(self.ffn_gate) * self.ffn(self.ffn_norm(queries))


class CrossAttentionTranslator(nn.Module):
    """``cross``: K learned queries cross-attending to the source states in a bottleneck width."""

    def __init__(
        self,
        source_dim: int,
        target_embedding: Tensor,
        *,
        soft_tokens: int,
        depth: int,
        bottleneck: int,
        heads: int,
        dropout: float = 0.0,
        cross_self_attention: bool = False,
        cross_ffn: str = "swiglu",
        cross_positions: str = "none",
        rms_detach: bool = False,
    ):
        super().__init__()
        _check_soft_tokens(soft_tokens)
        _check_choice("cross_positions", cross_positions, CROSS_POSITIONS)
        self.cross_positions = cross_positions
        _check_positive_int("depth", depth)
        _check_heads("heads", heads, "bottleneck", bottleneck)
        _check_fraction("dropout", dropout)
        self.soft_tokens = soft_tokens
        self.target_dim = target_embedding.shape[-1]
        self.queries = nn.Parameter(nn.init.orthogonal_(torch.empty(soft_tokens, bottleneck)))  # [K, W]
        self.source_proj = nn.Linear(source_dim, bottleneck)
        # one norm on the memory: source LMs' hidden states differ in scale by model and layer
        self.source_norm = nn.RMSNorm(bottleneck, eps=NORM_EPS)
        self.blocks = nn.ModuleList(
            GatedCrossAttentionBlock(bottleneck, heads, dropout, cross_self_attention, cross_ffn) for _ in range(depth)
        )
        self.output_norm = nn.RMSNorm(bottleneck, eps=NORM_EPS)
        self.output_proj = nn.Linear(bottleneck, self.target_dim)
        self.rms_match = RMSMatch(target_embedding, rms_detach)
        # start at the target's scale (unit-RMS input -> target RMS output) so RMSMatch's clamp does
        # not bind at init; target embeddings are often ~100x smaller than a default-initialised output
        nn.init.normal_(self.output_proj.weight, std=self.rms_match.target_rms.item() / math.sqrt(bottleneck))
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, source_states: Tensor, source_mask: Tensor, teacher=None, teacher_mask=None) -> TranslatorOutput:
        """``teacher`` is accepted for the common interface and unused: only the DiT learns from one."""
        source_states = source_states.to(self.source_proj.weight.dtype)
        memory = self.source_norm(self.source_proj(source_states))  # [B, S, W]
        if self.cross_positions == "sinusoidal":
            memory = memory + sinusoidal_positions(memory.shape[1], memory.shape[2], memory.device).to(memory.dtype)
        queries = self.queries.expand(source_states.shape[0], -1, -1)  # [B, K, W]
        padding = ~source_mask.bool()  # [B, S]
        for block in self.blocks:
            queries = block(queries, memory, padding)  # [B, K, W]
        tokens = self.output_proj(self.output_norm(queries))  # [B, K, target_dim]
        return TranslatorOutput(self.rms_match(tokens))


def sinusoidal_positions(length: int, width: int, device) -> Tensor:
    """The Transformer's fixed sinusoidal encodings of positions 0..length-1 (Vaswani et al. 2017): [length, width]."""
    half = (width + 1) // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=device) / half)  # [ceil(W/2)]
    angles = torch.arange(length, device=device)[:, None].float() * frequencies[None]  # [S, ceil(W/2)]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)[:, :width]


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean over the real positions: [B, S, D], [B, S] -> [B, D]."""
    weights = mask.to(states.dtype).unsqueeze(-1)  # [B, S, 1]
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)


class MeanPool(nn.Module):
    """``dit_pool: mean``: the masked mean of the source states."""

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(states, mask)


class AttentionPool(nn.Module):
    """``dit_pool: attention``: one learned query attends over the source states. The query starts
    at zero, where the weights are uniform over real tokens: the pool starts as the masked mean."""

    def __init__(self, width: int):
        super().__init__()
        self.key_norm = nn.RMSNorm(width, eps=NORM_EPS)
        self.query = nn.Parameter(torch.zeros(width))

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        scores = self.key_norm(states) @ self.query / math.sqrt(self.query.numel())  # [B, S]
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # [B, S]
        return torch.einsum("bs,bsd->bd", weights, states)  # [B, D]


class TimestepEmbedding(nn.Module):
    """Flow time t in [0, 1] -> sinusoidal features -> MLP, as DiT's ``TimestepEmbedder``."""

    def __init__(self, width: int, max_period: float = 10_000.0):
        super().__init__()
        half = TIMESTEP_FREQUENCIES // 2
        self.register_buffer(
            "frequencies", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False
        )  # [F/2]
        self.mlp = nn.Sequential(nn.Linear(TIMESTEP_FREQUENCIES, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: Tensor) -> Tensor:  # [B] -> [B, width]
        angles = (t.float() * TIMESTEP_RANGE)[:, None] * self.frequencies[None]  # [B, F/2]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # [B, F]
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class DiTBlock(nn.Module):
    """Self-attention and an MLP over the K tokens, each modulated by the condition (adaLN-Zero:
    the shift/scale/gate regressor is zero-initialised, so a new block is the identity)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width, elementwise_affine=False, eps=NORM_EPS)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.mlp_norm = nn.LayerNorm(width, elementwise_affine=False, eps=NORM_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(width, FFN_MULTIPLIER * width),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(FFN_MULTIPLIER * width, width),
            nn.Dropout(dropout),
        )
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(self, tokens: Tensor, condition: Tensor) -> Tensor:  # [B, K, W], [B, W] -> [B, K, W]
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = (
            self.modulation(condition)[:, None].chunk(6, dim=-1)
        )  # [B, 1, W] each
        normed = modulate(self.attention_norm(tokens), shift_attn, scale_attn)
        tokens = tokens + gate_attn * self.attention(normed, normed, normed, need_weights=False)[0]
        return tokens + gate_mlp * self.mlp(modulate(self.mlp_norm(tokens), shift_mlp, scale_mlp))


def check_dit_settings(soft_tokens, dit_dim, dit_depth, dit_heads, dit_pool, dit_steps_train, dit_steps_eval, dit_dropout, dit_cfg, dit_drop_cond) -> None:
    """The checks every DiT variant's settings pass (ours and the original's)."""
    _check_soft_tokens(soft_tokens)
    _check_positive_int("dit_depth", dit_depth)
    _check_heads("dit_heads", dit_heads, "dit_dim", dit_dim)
    _check_choice("dit_pool", dit_pool, DIT_POOLS)
    _check_positive_int("dit_steps_train", dit_steps_train)
    _check_positive_int("dit_steps_eval", dit_steps_eval)
    _check_fraction("dit_dropout", dit_dropout)
    _check_fraction("dit_drop_cond", dit_drop_cond)
    if isinstance(dit_cfg, bool) or not isinstance(dit_cfg, (int, float)) or dit_cfg < 0:
        raise _setting_error("dit_cfg", dit_cfg, "is not allowed; must be a number >= 0")


class DiTTranslator(nn.Module):
    """``dit``: a rectified flow from noise to the target's embeddings of a teacher text.

    The flow runs in units of the target's median embedding RMS (``rms_match.target_rms``): the
    teacher is divided by it going in and the generated tokens multiplied by it coming out, so the
    noise endpoint z ~ N(0, I) has the teacher's scale, the network sees unit-scale tokens whatever
    the target model, and the flow loss (MSE of the velocity in those units) is O(1).

    - Training with a teacher: one flow step per row, t ~ U(0, 1), x_t = (1-t)·z + t·x1; the
      stack predicts v ≈ x1 - z (``flow_loss``: MSE over ``teacher_mask`` positions) and the
      one-step denoised guess x_t + (1-t)·v becomes the soft tokens, so the LM loss trains the DiT
      too.
    - Training without a teacher: ``dit_steps_train`` Euler steps from noise, differentiated through.
    - Evaluation (``self.training`` False): ``dit_steps_eval`` Euler steps from noise, with
      classifier-free guidance v = v_cond + dit_cfg·(v_cond - v_uncond) when ``dit_cfg`` > 0;
      a teacher, if given, is ignored.

    With ``dit_drop_cond`` > 0 a learned null condition replaces that share of training rows'
    pooled source (the same rows for every step of one forward), which trains v_uncond. Noise, t
    and the dropped rows come from torch's global RNG: ``torch.manual_seed`` makes sampling
    repeatable.
    """

    def __init__(
        self,
        source_dim: int,
        target_embedding: Tensor,
        *,
        soft_tokens: int,
        dit_dim: int,
        dit_depth: int,
        dit_heads: int,
        dit_pool: str = "mean",
        dit_steps_train: int = 4,
        dit_steps_eval: int = 8,
        dit_dropout: float = 0.0,
        dit_cfg: float = 0.0,
        dit_drop_cond: float = 0.0,
        rms_detach: bool = False,
    ):
        super().__init__()
        check_dit_settings(soft_tokens, dit_dim, dit_depth, dit_heads, dit_pool, dit_steps_train, dit_steps_eval, dit_dropout, dit_cfg, dit_drop_cond)
        if dit_cfg > 0 and dit_drop_cond == 0:
            raise _setting_error("dit_cfg", dit_cfg, "needs dit_drop_cond > 0: without it the unconditional velocity never trains")
        self.soft_tokens = soft_tokens
        self.target_dim = target_embedding.shape[-1]
        self.dit_steps_train = dit_steps_train
        self.dit_steps_eval = dit_steps_eval
        self.dit_cfg = dit_cfg
        self.dit_drop_cond = dit_drop_cond
        self.rms_match = RMSMatch(target_embedding, rms_detach)

        self.pool = MeanPool() if dit_pool == "mean" else AttentionPool(source_dim)
        # pooled hidden states keep their source model's scale; normalise before projecting
        self.condition_norm = nn.RMSNorm(source_dim, eps=NORM_EPS)
        self.condition_proj = nn.Linear(source_dim, dit_dim)
        # only a model that drops conditions can train (and so owns) the null condition
        self.null_condition = nn.Parameter(torch.zeros(dit_dim)) if dit_drop_cond > 0 else None
        self.time_embedding = TimestepEmbedding(dit_dim)

        self.input_proj = nn.Linear(self.target_dim, dit_dim)
        self.positions = nn.Parameter(torch.randn(soft_tokens, dit_dim) * 0.02)  # [K, dit_dim], as DiT's embeddings
        self.blocks = nn.ModuleList(DiTBlock(dit_dim, dit_heads, dit_dropout) for _ in range(dit_depth))
        self.final_norm = nn.LayerNorm(dit_dim, elementwise_affine=False, eps=NORM_EPS)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dit_dim, 2 * dit_dim))
        self.output_proj = nn.Linear(dit_dim, self.target_dim)
        for zeroed in (self.final_modulation[-1], self.output_proj):
            nn.init.zeros_(zeroed.weight)
            nn.init.zeros_(zeroed.bias)

    def condition(self, source_states: Tensor, source_mask: Tensor) -> Tensor:
        """The pooled, projected source: [B, S, source_dim], [B, S] -> [B, dit_dim]."""
        source_states = source_states.to(self.condition_proj.weight.dtype)
        pooled = self.pool(source_states, source_mask.bool())  # [B, source_dim]
        return self.condition_proj(self.condition_norm(pooled))

    def velocity(self, tokens: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """v(x_t, t | c) in flow units: [B, K, target_dim], [B], [B, dit_dim] -> [B, K, target_dim]."""
        conditioning = condition + self.time_embedding(t)  # [B, dit_dim]
        hidden = self.input_proj(tokens) + self.positions[: tokens.shape[1]]  # [B, K, dit_dim]
        for block in self.blocks:
            hidden = block(hidden, conditioning)
        shift, scale = self.final_modulation(conditioning)[:, None].chunk(2, dim=-1)  # [B, 1, dit_dim] each
        return self.output_proj(modulate(self.final_norm(hidden), shift, scale))

    def guided_velocity(self, tokens: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """The velocity, with classifier-free guidance at evaluation when ``dit_cfg`` > 0."""
        conditional = self.velocity(tokens, t, condition)
        if self.training or self.dit_cfg == 0:
            return conditional
        unconditional = self.velocity(tokens, t, self.null_condition.expand_as(condition))
        return conditional + self.dit_cfg * (conditional - unconditional)

    def sample(self, condition: Tensor, steps: int, k: int) -> Tensor:
        """Euler integration of the flow from noise (t=0) to data (t=1): [B, dit_dim] -> [B, k, target_dim]."""
        batch = condition.shape[0]
        weight = self.output_proj.weight  # noise and integration in the parameters' dtype, not autocast's
        tokens = torch.randn(batch, k, self.target_dim, device=weight.device, dtype=weight.dtype)
        for step in range(steps):
            t = torch.full((batch,), step / steps, device=condition.device)
            tokens = tokens + self.guided_velocity(tokens, t, condition) / steps
        return tokens

    def flow_step(self, condition: Tensor, teacher: Tensor, teacher_mask: Tensor | None, k: int) -> TranslatorOutput:
        """One rectified-flow training step: the flow loss and the one-step denoised guess."""
        if teacher.shape[1:] != (k, self.target_dim):
            raise ValueError(
                f"teacher has shape {tuple(teacher.shape)}; expected [batch, {k}, {self.target_dim}] "
                "(the caller pads or truncates it to soft_tokens)"
            )
        data = teacher.to(self.output_proj.weight.dtype) / self.rms_match.target_rms  # [B, K, target_dim], x1
        noise = torch.randn_like(data)  # z
        t = torch.rand(data.shape[0], device=data.device)  # [B]
        t_tokens = t.to(data.dtype)[:, None, None]  # [B, 1, 1]
        noisy = (1 - t_tokens) * noise + t_tokens * data  # x_t
        velocity = self.velocity(noisy, t, condition)  # [B, K, target_dim]
        error = (velocity - (data - noise)).pow(2).mean(dim=-1)  # [B, K]
        weights = torch.ones_like(error) if teacher_mask is None else teacher_mask.to(error.dtype)
        flow_loss = (error * weights).sum() / weights.sum().clamp_min(1)
        denoised = noisy + (1 - t_tokens) * velocity  # [B, K, target_dim]
        return TranslatorOutput(self.rms_match(denoised * self.rms_match.target_rms), flow_loss)

    def forward(
        self, source_states: Tensor, source_mask: Tensor, teacher: Tensor | None = None, teacher_mask: Tensor | None = None
    ) -> TranslatorOutput:
        k = self.soft_tokens
        condition = self.condition(source_states, source_mask)  # [B, dit_dim]
        if self.training and self.null_condition is not None:
            dropped = torch.rand(condition.shape[0], device=condition.device) < self.dit_drop_cond  # [B]
            condition = torch.where(dropped[:, None], self.null_condition, condition)
        if self.training and teacher is not None:
            return self.flow_step(condition, teacher, teacher_mask, k)
        steps = self.dit_steps_train if self.training else self.dit_steps_eval
        tokens = self.sample(condition, steps, k) * self.rms_match.target_rms  # [B, K, target_dim]
        return TranslatorOutput(self.rms_match(tokens))


CROSS_SETTINGS = ("depth", "bottleneck", "heads", "dropout")
DIT_SETTINGS = (
    "dit_dim", "dit_depth", "dit_heads", "dit_pool", "dit_steps_train", "dit_steps_eval",
    "dit_dropout", "dit_cfg", "dit_drop_cond",
)
# the original's behaviours, each optional here (the constructors' defaults are ours); a run's settings carry them all
ORIGINAL_CHOICE_SETTINGS = {"cross": ("rms_detach", "cross_self_attention", "cross_ffn", "cross_positions"), "dit": ("rms_detach",)}


def build_translator(
    settings: dict, *, source_dim: int, target_dim: int, target_embedding: Tensor, source_max_length: int
) -> nn.Module:
    """The translator a bridge run's settings describe; other keys of ``settings`` are ignored.
    ``source_max_length`` (the source tokenizer's ``model_max_length``) resolves ``soft_tokens: -1``."""
    translator = settings.get("translator")
    _check_choice("translator", translator, TRANSLATORS)
    if target_embedding.shape[-1] != target_dim:
        raise ValueError(f"target_embedding has width {target_embedding.shape[-1]}, target_dim is {target_dim}")
    keys = ("soft_tokens",) + (CROSS_SETTINGS if translator == "cross" else DIT_SETTINGS)
    missing = [key for key in keys if key not in settings]
    if missing:
        raise ValueError(f"bridge run setting {missing[0]!r} is missing (translator {translator!r} needs {', '.join(keys)})")
    chosen = {key: settings[key] for key in keys + ORIGINAL_CHOICE_SETTINGS[translator] if key in settings}
    chosen["soft_tokens"] = soft_token_count(settings["soft_tokens"], settings.get("soft_tokens_cap"), source_max_length)
    if translator == "cross":
        return CrossAttentionTranslator(source_dim, target_embedding, **chosen)
    variant = settings.get("dit_variant", "ours")
    _check_choice("dit_variant", variant, DIT_VARIANTS)
    if variant == "original":
        from ablation.bridge.original_dit import OriginalDiTTranslator  # it builds on this module's parts

        return OriginalDiTTranslator(source_dim, target_embedding, **chosen)
    return DiTTranslator(source_dim, target_embedding, **chosen)


def decay_parameter_groups(module: nn.Module, weight_decay: float, lr: float, gate_lr_multiplier: float = 1.0) -> list[dict]:
    """AdamW groups: weight decay on trainable ≥2-D weight matrices only; biases, norm gains, the
    null condition, the attention-pool query and the ``TOKEN_PARAMETERS`` go undecayed; the tanh
    gates (``*_gate``) go undecayed at ``gate_lr_multiplier`` × lr (the original's: 3)."""
    decay, no_decay, gates = [], [], []
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("_gate"):
            gates.append(parameter)
        elif parameter.ndim >= 2 and leaf not in TOKEN_PARAMETERS:
            decay.append(parameter)
        else:
            no_decay.append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay, "lr": lr}, {"params": no_decay, "weight_decay": 0.0, "lr": lr}]
    if gates:
        groups.append({"params": gates, "weight_decay": 0.0, "lr": lr * gate_lr_multiplier})
    return groups


def soft_token_spread(soft_tokens: Tensor) -> float:
    """How much a translator's soft tokens [N, K, D] for N questions vary between the questions,
    relative to their size: RMS of each token's deviation from its mean over the questions,
    over RMS of the tokens. 0 when every question gets the same tokens (the translator ignores its
    source: a collapse InfoNCE is meant to prevent); about 1 for unrelated tokens. Needs N ≥ 2."""
    if soft_tokens.ndim != 3 or soft_tokens.size(0) < 2:
        raise ValueError(f"soft-token spread needs [questions ≥ 2, K, D] tokens, got shape {tuple(soft_tokens.shape)}")
    tokens = soft_tokens.detach().float()
    deviation = tokens - tokens.mean(dim=0, keepdim=True)
    size = tokens.pow(2).mean().sqrt()
    return float(deviation.pow(2).mean().sqrt() / size) if size > 0 else 0.0
