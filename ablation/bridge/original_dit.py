"""The DiT translator as the original latent-bridge script computed it (``dit_variant: original``).

Same settings and interface as :class:`~ablation.bridge.translators.DiTTranslator` (ours, the
default); what the original computed differently, each difference a change of the numbers:

- the flow lives in the DiT's own width: training projects the teacher into it and draws the noise
  there, sampling draws the noise in the target's width and projects it; the loss is the velocity's
  MSE over every position, the teacher's zero padding included; the teacher keeps its raw scale;
- the block stack's output is the velocity itself: no positional embedding on the K tokens, no final
  adaLN layer, gain-free RMSNorm (not LayerNorm) in the blocks;
- Euler sampling reads the velocity at t = (i+1)/steps, from 1/steps to 1 (ours: i/steps, from 0);
- the condition: an identity-initialised linear map of the source states, pooled (masked mean, or
  multi-head attention from one random query), then a 4x MLP with GELU and dropout;
- the time embedding: ``dit_dim`` sinusoidal features of t in [0, 1] (unstretched) through a 4x MLP;
- guidance v_u + dit_cfg·(v_c − v_u) from a randomly initialised null condition, and condition
  dropout (``dit_drop_cond``) only while guidance is on.

RMS matching follows, as for every translator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablation.bridge.translators import (
    FFN_MULTIPLIER,
    NORM_EPS,
    RMSMatch,
    TranslatorOutput,
    _check_heads,
    check_dit_settings,
    masked_mean,
)

POOL_HEADS = 8  # the original's attention pool, whatever dit_heads says


class SinusoidalTime(nn.Module):
    """t in [0, 1] -> ``width`` cos/sin features -> a 4x MLP with SiLU."""

    def __init__(self, width: int, max_period: float = 10_000.0):
        super().__init__()
        half = width // 2
        self.register_buffer("frequencies", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, FFN_MULTIPLIER * width), nn.SiLU(), nn.Linear(FFN_MULTIPLIER * width, width))

    def forward(self, t: Tensor) -> Tensor:  # [B] -> [B, width]
        angles = t.float()[:, None] * self.frequencies[None]  # [B, width/2]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        features = F.pad(features, (0, self.width - features.shape[-1]))  # an odd width gets a zero feature
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class SourceCondition(nn.Module):
    """Source states -> identity-initialised linear map -> pooled -> 4x MLP: [B, S, Ds], [B, S] -> [B, W]."""

    def __init__(self, source_dim: int, width: int, pool: str, dropout: float):
        super().__init__()
        self.align = nn.Linear(source_dim, source_dim, bias=False)
        nn.init.eye_(self.align.weight)
        self.pool = pool
        if pool == "attention":
            self.query = nn.Parameter(torch.randn(1, 1, source_dim))
            _check_heads("the original's attention pool (8 heads)", POOL_HEADS, "the source width", source_dim)
            self.attention = nn.MultiheadAttention(source_dim, POOL_HEADS, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(source_dim, FFN_MULTIPLIER * width),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(FFN_MULTIPLIER * width, width),
        )

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        states = self.align(states.to(self.align.weight.dtype))
        if self.pool == "attention":
            query = self.query.expand(states.shape[0], -1, -1)  # [B, 1, Ds]
            pooled = self.attention(query, states, states, key_padding_mask=~mask, need_weights=False)[0][:, 0]
        else:
            pooled = masked_mean(states, mask)
        return self.mlp(pooled)


class OriginalDiTBlock(nn.Module):
    """adaLN-Zero self-attention and MLP over the K tokens, with gain-free RMSNorm."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.RMSNorm(width, elementwise_affine=False, eps=NORM_EPS)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.mlp_norm = nn.RMSNorm(width, elementwise_affine=False, eps=NORM_EPS)
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
        scale_attn, shift_attn, gate_attn, scale_mlp, shift_mlp, gate_mlp = self.modulation(condition)[:, None].chunk(6, dim=-1)
        normed = self.attention_norm(tokens) * (1 + scale_attn) + shift_attn
        tokens = tokens + gate_attn * self.attention(normed, normed, normed, need_weights=False)[0]
        return tokens + gate_mlp * self.mlp(self.mlp_norm(tokens) * (1 + scale_mlp) + shift_mlp)


class OriginalDiTTranslator(nn.Module):
    """``translator: dit`` with ``dit_variant: original``; see the module docstring."""

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
        self.soft_tokens = soft_tokens
        self.target_dim = target_embedding.shape[-1]
        self.dit_steps_train, self.dit_steps_eval = dit_steps_train, dit_steps_eval
        self.dit_cfg, self.dit_drop_cond = dit_cfg, dit_drop_cond
        self.rms_match = RMSMatch(target_embedding, rms_detach)
        self.to_model = nn.Linear(self.target_dim, dit_dim)
        self.to_target = nn.Linear(dit_dim, self.target_dim)
        self.time_embedding = SinusoidalTime(dit_dim)
        self.source_condition = SourceCondition(source_dim, dit_dim, dit_pool, dit_dropout)
        self.blocks = nn.ModuleList(OriginalDiTBlock(dit_dim, dit_heads, dit_dropout) for _ in range(dit_depth))
        # drawn at random as the original did; only guidance reads it, so only a guided model has one
        self.null_condition = nn.Parameter(torch.randn(1, dit_dim)) if dit_cfg > 0 else None

    def velocity(self, tokens: Tensor, t: Tensor, condition: Tensor) -> Tensor:  # [B, K, W], [B], [B, W] -> [B, K, W]
        conditioning = condition + self.time_embedding(t)
        for block in self.blocks:
            tokens = block(tokens, conditioning)
        return tokens

    def sample(self, condition: Tensor, steps: int) -> Tensor:  # [B, W] -> [B, K, target_dim]
        batch = condition.shape[0]
        noise = torch.randn(batch, self.soft_tokens, self.target_dim, device=condition.device, dtype=self.to_model.weight.dtype)
        tokens = self.to_model(noise)
        for step in range(steps):
            t = torch.full((batch,), (step + 1) / steps, device=condition.device)
            velocity = self.velocity(tokens, t, condition)
            if self.dit_cfg > 0:
                unconditional = self.velocity(tokens, t, self.null_condition.expand_as(condition))
                velocity = unconditional + self.dit_cfg * (velocity - unconditional)
            tokens = tokens + velocity / steps
        return self.to_target(tokens)

    def forward(
        self, source_states: Tensor, source_mask: Tensor, teacher: Tensor | None = None, teacher_mask: Tensor | None = None
    ) -> TranslatorOutput:
        """``teacher_mask`` is accepted for the common interface; the original's loss read every position."""
        condition = self.source_condition(source_states, source_mask.bool())  # [B, W]
        if self.training and teacher is not None:
            if self.dit_cfg > 0 and self.dit_drop_cond > 0:
                dropped = torch.rand(condition.shape[0], 1, device=condition.device) < self.dit_drop_cond
                condition = torch.where(dropped, self.null_condition.expand_as(condition), condition)
            data = self.to_model(teacher.to(self.to_model.weight.dtype))  # [B, K, W], x1
            noise = torch.randn_like(data)  # z
            t = torch.rand(data.shape[0], device=data.device)
            t_tokens = t.to(data.dtype)[:, None, None]
            noisy = (1 - t_tokens) * noise + t_tokens * data
            velocity = self.velocity(noisy, t, condition)
            flow_loss = F.mse_loss(velocity, data - noise)
            return TranslatorOutput(self.rms_match(self.to_target(noisy + (1 - t_tokens) * velocity)), flow_loss)
        steps = self.dit_steps_train if self.training else self.dit_steps_eval
        return TranslatorOutput(self.rms_match(self.sample(condition, steps)))
