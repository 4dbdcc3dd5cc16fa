"""The bridge translators: shapes, RMS matching, masking, the DiT's flow and sampling, gradients,
settings errors, AdamW groups, and that a cross translator can learn at all. Tiny dims: seconds."""

from __future__ import annotations

import statistics

import pytest
import torch

from ablation.bridge.original_dit import OriginalDiTTranslator
from ablation.bridge.translators import (
    RMS_SCALE_RANGE,
    CrossAttentionTranslator,
    DiTTranslator,
    RMSMatch,
    TranslatorOutput,
    build_translator,
    decay_parameter_groups,
    soft_token_spread,
)

SOURCE_DIM, TARGET_DIM, K, BATCH, SOURCE_LEN, VOCAB = 24, 40, 5, 3, 7, 33
LENGTHS = (7, 4, 1)  # real source tokens per row; the rest is padding

CROSS = dict(translator="cross", soft_tokens=K, depth=2, bottleneck=16, heads=4, dropout=0.0)
DIT = dict(
    translator="dit", soft_tokens=K, dit_dim=16, dit_depth=2, dit_heads=2, dit_pool="mean",
    dit_steps_train=2, dit_steps_eval=3, dit_dropout=0.0, dit_cfg=0.0, dit_drop_cond=0.0,
)
VARIANTS = {
    "cross": CROSS,
    "dit-mean": DIT,
    "dit-attention": {**DIT, "dit_pool": "attention"},
    "dit-cfg": {**DIT, "dit_cfg": 2.0, "dit_drop_cond": 0.5, "dit_dropout": 0.1},
    "dit-original": {**DIT, "dit_variant": "original"},
    "dit-original-attention": {**DIT, "dit_variant": "original", "dit_pool": "attention", "dit_dropout": 0.1},
    "dit-original-cfg": {**DIT, "dit_variant": "original", "dit_cfg": 2.0, "dit_drop_cond": 0.5},
}


def target_embedding() -> torch.Tensor:
    """Rows of very different sizes, so the median row RMS differs from the table's overall RMS."""
    generator = torch.Generator().manual_seed(7)
    row_scales = torch.logspace(-2, 0, VOCAB)[torch.randperm(VOCAB, generator=generator)]
    return torch.randn(VOCAB, TARGET_DIM, generator=generator) * row_scales[:, None]  # [vocab, target_dim]


def median_row_rms(embedding: torch.Tensor) -> float:
    return statistics.median(row.pow(2).mean().sqrt().item() for row in embedding)


def build(settings: dict, seed: int = 0, source_max_length: int = 512):
    torch.manual_seed(seed)
    return build_translator(
        settings, source_dim=SOURCE_DIM, target_dim=TARGET_DIM, target_embedding=target_embedding(), source_max_length=source_max_length
    )


def source_batch() -> tuple[torch.Tensor, torch.Tensor]:
    states = torch.randn(BATCH, SOURCE_LEN, SOURCE_DIM) * 3  # [B, S, source_dim]
    mask = torch.arange(SOURCE_LEN)[None] < torch.tensor(LENGTHS)[:, None]  # [B, S]
    return states, mask


def teacher_batch() -> tuple[torch.Tensor, torch.Tensor]:
    teacher = target_embedding()[torch.randint(VOCAB, (BATCH, K))]  # [B, K, target_dim]
    teacher_mask = torch.arange(K)[None] < torch.tensor([5, 3, 2])[:, None]  # [B, K]
    return teacher, teacher_mask


def perturb_(module: torch.nn.Module, size: float = 0.3) -> None:
    """Move every parameter off its init: zero-initialised gates would otherwise hide the rest."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * size)


def token_rms(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.pow(2).mean(dim=-1).sqrt()  # [B, K]


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shapes_in_training_and_evaluation(variant):
    translator = build(VARIANTS[variant])
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    assert (translator.soft_tokens, translator.target_dim) == (K, TARGET_DIM)
    for training in (True, False):
        translator.train(training)
        output = translator(states, mask, teacher, teacher_mask)
        assert isinstance(output, TranslatorOutput)
        assert output.soft_tokens.shape == (BATCH, K, TARGET_DIM)
        assert torch.isfinite(output.soft_tokens).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_soft_token_has_the_target_median_rms_unless_the_clamp_binds(variant):
    translator = build(VARIANTS[variant])
    perturb_(translator, size=0.02)  # gently: most tokens need a scale inside the clamp
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    expected = median_row_rms(target_embedding())
    assert translator.rms_match.target_rms.item() == pytest.approx(expected, rel=1e-6)
    unmatched = []
    translator.rms_match.register_forward_hook(lambda module, inputs, output: unmatched.append(inputs[0]))
    outputs = [translator.train()(states, mask, teacher, teacher_mask), translator.eval()(states, mask)]
    matched_tokens = 0
    for before, output in zip(unmatched, outputs):
        needed = expected / token_rms(before)  # [B, K], the scale each token needs
        in_range = (needed >= RMS_SCALE_RANGE[0]) & (needed <= RMS_SCALE_RANGE[1])
        clamped_rms = token_rms(before) * needed.clamp(*RMS_SCALE_RANGE)
        torch.testing.assert_close(token_rms(output.soft_tokens), torch.where(in_range, expected, clamped_rms), atol=1e-4, rtol=0)
        matched_tokens += in_range.sum().item()
    if VARIANTS[variant].get("dit_variant") != "original":  # the original's output starts far from the target's scale
        assert matched_tokens > BATCH * K  # most of the 2·B·K tokens: the test is not only about the clamp


def test_rms_match_clamps_the_scale_factor_and_passes_gradients():
    embedding = target_embedding()
    match = RMSMatch(embedding)
    target = median_row_rms(embedding)
    assert not match.target_rms.requires_grad
    low, high = RMS_SCALE_RANGE
    tiny = torch.full((1, 2, TARGET_DIM), target * 1e-3, requires_grad=True)  # needs a 1000x scale
    huge = torch.full((1, 2, TARGET_DIM), target * 1e3)  # needs a 1/1000 scale
    fine = torch.full((1, 2, TARGET_DIM), target * 2.0)  # needs 0.5: inside the range
    torch.testing.assert_close(match(tiny), tiny * high)
    torch.testing.assert_close(match(huge), huge * low)
    torch.testing.assert_close(token_rms(match(fine)), torch.full((1, 2), target))
    match(tiny).sum().backward()
    torch.testing.assert_close(tiny.grad, torch.full_like(tiny, high))
    zero = torch.zeros(1, 1, TARGET_DIM, requires_grad=True)
    match(zero).sum().backward()
    assert torch.equal(match(zero), zero) and torch.isfinite(zero.grad).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_source_positions_do_not_change_the_output(variant):
    translator = build(VARIANTS[variant])
    perturb_(translator)
    states, mask = source_batch()
    changed = torch.where(mask[..., None], states, states * 100 + 50)
    teacher, teacher_mask = teacher_batch()
    for training in (True, False):
        translator.train(training)
        outputs = []
        for source in (states, changed):
            torch.manual_seed(3)
            outputs.append(translator(source, mask, teacher, teacher_mask))
        torch.testing.assert_close(outputs[0].soft_tokens, outputs[1].soft_tokens, atol=1e-6, rtol=1e-6)
    different = states.clone()
    different[:, 0] += 1.0  # a real position: the output must notice
    torch.manual_seed(3)
    assert not torch.allclose(translator(different, mask).soft_tokens, outputs[0].soft_tokens)


def test_cross_has_no_flow_loss():
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    assert build(CROSS).train()(states, mask, teacher, teacher_mask).flow_loss is None


@pytest.mark.parametrize("variant", ["dit-mean", "dit-attention", "dit-cfg"])
def test_dit_flow_loss_only_when_training_with_a_teacher(variant):
    translator = build(VARIANTS[variant])
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    loss = translator.train()(states, mask, teacher, teacher_mask).flow_loss
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    assert translator.train()(states, mask).flow_loss is None
    assert translator.eval()(states, mask, teacher, teacher_mask).flow_loss is None


def test_dit_flow_loss_counts_only_teacher_positions():
    translator = build(DIT).train()
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    garbage = torch.where(teacher_mask[..., None], teacher, torch.full_like(teacher, 1e3))
    losses = []
    for endpoint in (teacher, garbage):
        torch.manual_seed(5)
        losses.append(translator(states, mask, endpoint, teacher_mask).flow_loss)
    torch.testing.assert_close(losses[0], losses[1])
    torch.manual_seed(5)
    assert translator(states, mask, garbage).flow_loss > 10 * losses[0]  # no mask: every position counts


def test_dit_with_a_perfect_velocity_recovers_the_teacher():
    """Rectified flow: with v = x1 - z the one-step guess is x1 and the flow loss 0 for every t, and
    Euler steps along the straight line to x1 land on it from any noise."""
    translator = build(DIT)
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    data = teacher / translator.rms_match.target_rms  # x1 in flow units

    def true_velocity(noisy, t, condition):
        t = t[:, None, None]
        noise = (noisy - t * data) / (1 - t)  # z, from x_t = (1-t)·z + t·x1
        return data - noise

    def straight_to_data(tokens, t, condition):
        return (data - tokens) / (1 - t[:, None, None])

    translator.velocity = true_velocity
    trained = translator.train()(states, mask, teacher, teacher_mask)
    torch.testing.assert_close(trained.soft_tokens, translator.rms_match(teacher))
    assert trained.flow_loss.item() == pytest.approx(0, abs=1e-10)
    translator.velocity = straight_to_data
    sampled = translator.eval()(states, mask).soft_tokens
    torch.testing.assert_close(sampled, translator.rms_match(teacher))


def test_dit_dropped_conditions_ignore_the_source():
    translator = build({**DIT, "dit_drop_cond": 1.0})
    perturb_(translator)
    states, mask = source_batch()
    outputs = []
    for source in (states, torch.randn_like(states)):
        torch.manual_seed(6)
        outputs.append(translator.train()(source, mask).soft_tokens)
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.manual_seed(6)
    assert not torch.allclose(translator.eval()(states, mask).soft_tokens, outputs[0])


def test_dit_rejects_a_teacher_of_the_wrong_length():
    states, mask = source_batch()
    teacher, _ = teacher_batch()
    with pytest.raises(ValueError, match="pads or truncates"):
        build(DIT).train()(states, mask, teacher[:, :-1])


def count_velocity_calls(translator, **forward) -> int:
    calls = []
    handle = translator.output_proj.register_forward_hook(lambda *_: calls.append(1))
    translator(*source_batch(), **forward)
    handle.remove()
    return len(calls)


def test_dit_steps_train_and_eval_are_euler_steps():
    translator = build(VARIANTS["dit-cfg"])  # train 2 steps, eval 3 steps, guidance on
    teacher, teacher_mask = teacher_batch()
    assert count_velocity_calls(translator.train(), teacher=teacher, teacher_mask=teacher_mask) == 1
    assert count_velocity_calls(translator.train()) == DIT["dit_steps_train"]
    assert count_velocity_calls(translator.eval()) == 2 * DIT["dit_steps_eval"]  # conditional + unconditional


def test_dit_sampling_is_deterministic_under_a_seed():
    translator = build(VARIANTS["dit-cfg"]).eval()
    perturb_(translator)
    states, mask = source_batch()
    samples = []
    for seed in (11, 11, 12):
        torch.manual_seed(seed)
        samples.append(translator(states, mask).soft_tokens)
    assert torch.equal(samples[0], samples[1])
    assert not torch.allclose(samples[0], samples[2])


def test_classifier_free_guidance_changes_the_sample():
    guided = build(VARIANTS["dit-cfg"])
    perturb_(guided)
    unguided = build({**VARIANTS["dit-cfg"], "dit_cfg": 0.0})
    unguided.load_state_dict(guided.state_dict())
    states, mask = source_batch()
    samples = []
    for translator in (guided, unguided, guided):
        torch.manual_seed(4)
        samples.append(translator.eval()(states, mask).soft_tokens)
    assert torch.equal(samples[0], samples[2])
    assert not torch.allclose(samples[0], samples[1], atol=1e-4)


def test_soft_token_spread_is_zero_when_the_source_is_ignored_and_grows_with_it():
    states, mask = source_batch()
    cross = build(CROSS)  # closed gates: the same tokens for every row
    assert soft_token_spread(cross(states, mask).soft_tokens) < 1e-6  # equal up to rounding
    perturb_(cross)
    spread = soft_token_spread(cross(states, mask).soft_tokens)
    assert 0.0 < spread < 1.0


def test_soft_token_spread_is_relative_to_the_tokens_size():
    tokens = torch.randn(50, K, TARGET_DIM, generator=torch.Generator().manual_seed(1))
    assert soft_token_spread(tokens) == pytest.approx(soft_token_spread(tokens * 100.0), rel=1e-5)
    assert soft_token_spread(tokens) == pytest.approx(1.0, abs=0.05)  # unrelated tokens
    shifted = tokens * 0.1 + torch.randn(1, K, TARGET_DIM, generator=torch.Generator().manual_seed(2))
    assert soft_token_spread(shifted) == pytest.approx(0.1, abs=0.02)  # a shared part nine-tenths of the size
    assert soft_token_spread(torch.zeros(4, K, TARGET_DIM)) == 0.0


@pytest.mark.parametrize("shape", [(1, K, TARGET_DIM), (K, TARGET_DIM)])
def test_soft_token_spread_needs_two_questions(shape):
    with pytest.raises(ValueError, match="questions ≥ 2"):
        soft_token_spread(torch.randn(*shape))


def test_new_blocks_start_as_identity():
    """Zero-initialised gates: cross ignores the source at init; the DiT's velocity starts at zero."""
    states, mask = source_batch()
    cross = build(CROSS)
    torch.testing.assert_close(cross(states, mask).soft_tokens, cross(torch.randn_like(states), mask).soft_tokens)
    dit = build(DIT).eval()
    torch.manual_seed(2)
    noise = torch.randn(BATCH, K, TARGET_DIM) * dit.rms_match.target_rms
    torch.manual_seed(2)
    torch.testing.assert_close(dit(states, mask).soft_tokens, dit.rms_match(noise))


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_translator_parameter(variant):
    translator = build(VARIANTS[variant])
    perturb_(translator)
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    torch.manual_seed(1)
    trained = translator.train()(states, mask, teacher, teacher_mask)
    loss = trained.soft_tokens.pow(2).mean() + (trained.flow_loss if trained.flow_loss is not None else 0)
    # the eval pass reaches the null condition through guidance even if no training row dropped
    loss = loss + translator.eval()(states, mask).soft_tokens.pow(2).mean()
    loss.backward()
    for name, parameter in translator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({**CROSS, "translator": "foo"}, "translator"),
        ({k: v for k, v in CROSS.items() if k != "translator"}, "translator"),
        ({**CROSS, "soft_tokens": 0}, "soft_tokens"),
        ({**DIT, "soft_tokens": -2}, "soft_tokens"),
        ({**CROSS, "heads": 5}, "heads"),
        ({**CROSS, "depth": 0}, "depth"),
        ({**CROSS, "dropout": 1.5}, "dropout"),
        ({k: v for k, v in CROSS.items() if k != "bottleneck"}, "bottleneck"),
        ({**DIT, "dit_heads": 3}, "dit_heads"),
        ({**DIT, "dit_pool": "max"}, "dit_pool"),
        ({**DIT, "dit_steps_eval": 0}, "dit_steps_eval"),
        ({**DIT, "dit_cfg": 1.5}, "dit_cfg"),  # guidance without condition dropout
        ({**DIT, "dit_drop_cond": -0.1}, "dit_drop_cond"),
        ({**DIT, "dit_variant": "theirs"}, "dit_variant"),
    ],
)
def test_build_translator_errors_name_the_key(settings, key):
    with pytest.raises(ValueError, match=f"bridge run setting '{key}'"):
        build(settings)


def test_build_translator_message_lists_what_is_allowed():
    with pytest.raises(ValueError, match="'translator': 'foo' is not allowed; allowed: cross, dit$"):
        build({**CROSS, "translator": "foo"})
    with pytest.raises(ValueError, match="'heads': 5 does not divide bottleneck 16"):
        CrossAttentionTranslator(SOURCE_DIM, target_embedding(), soft_tokens=K, depth=1, bottleneck=16, heads=5)


def test_build_translator_reads_its_keys_and_ignores_others():
    cross = build({**CROSS, "dit_dim": 3, "lr": 1e-4})
    dit = build({**VARIANTS["dit-attention"], "depth": -1, "heads": 7})
    assert isinstance(cross, CrossAttentionTranslator) and len(cross.blocks) == CROSS["depth"]
    assert cross.queries.shape == (K, CROSS["bottleneck"])
    assert isinstance(dit, DiTTranslator) and len(dit.blocks) == DIT["dit_depth"]
    assert dit.positions.shape == (K, DIT["dit_dim"]) and dit.null_condition is None
    with pytest.raises(ValueError, match="target_dim"):
        build_translator(CROSS, source_dim=SOURCE_DIM, target_dim=TARGET_DIM + 1, target_embedding=target_embedding(), source_max_length=512)


def test_cross_queries_are_orthogonal():
    queries = build(CROSS).queries.detach()  # [K, bottleneck], K <= bottleneck: orthonormal rows
    torch.testing.assert_close(queries @ queries.T, torch.eye(K), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["cross", "dit-attention", "dit-cfg"])
def test_decay_groups_partition_the_parameters(variant):
    translator = build(VARIANTS[variant])
    groups = decay_parameter_groups(translator, 0.01, 1e-3, gate_lr_multiplier=3.0)
    gated = variant == "cross"  # the DiT has no tanh gates (adaLN-Zero instead)
    assert [group["weight_decay"] for group in groups] == [0.01, 0.0] + [0.0] * gated
    assert [group["lr"] for group in groups] == [1e-3, 1e-3] + [3e-3] * gated
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in translator.parameters())
    assert len(grouped) == len(set(grouped))
    decayed = {id(p) for p in groups[0]["params"]}
    names = {name for name, p in translator.named_parameters() if id(p) in decayed}
    assert all(translator.get_parameter(name).ndim >= 2 for name in names)
    assert not names & {"queries", "positions"}
    assert "output_proj.weight" in names and "output_proj.bias" not in names
    torch.optim.AdamW(groups, lr=1e-3)  # groups AdamW accepts


def test_the_original_cross_translator_gates_its_self_attention_and_groups_its_gates_apart():
    """The original's choices: query self-attention, a two-thirds SwiGLU with biases, and every
    tanh gate (self-attention, cross-attention, FFN) alone in the gate group."""
    ours = build(CROSS)
    original = build({**CROSS, "cross_self_attention": True, "cross_ffn": "swiglu_two_thirds", "dropout": 0.1})
    block = original.blocks[0]
    assert ours.blocks[0].self_attention is None and block.self_attention is not None
    width = CROSS["bottleneck"]
    assert ours.blocks[0].ffn.down.in_features == 4 * width and ours.blocks[0].ffn.down.bias is None
    assert block.ffn.down.in_features == 2 * 4 * width // 3 and block.ffn.down.bias is not None
    gates = decay_parameter_groups(original, 0.01, 1e-3, gate_lr_multiplier=3.0)[2]["params"]
    gate_names = {name for name, p in original.named_parameters() if any(p is g for g in gates)}
    assert gate_names == {f"blocks.{i}.{gate}" for i in range(CROSS["depth"])
                          for gate in ("self_attention_gate", "attention_gate", "ffn_gate")}  # fmt: skip


def test_rms_statistics_detached_change_the_gradient_not_the_tokens():
    embedding = target_embedding()
    ours, original = RMSMatch(embedding), RMSMatch(embedding, detach=True)
    tokens = (torch.randn(2, 3, TARGET_DIM) * ours.target_rms).requires_grad_()  # the clamp does not bind
    torch.testing.assert_close(ours(tokens), original(tokens))
    (ours_grad,) = torch.autograd.grad(ours(tokens).pow(2).sum(), tokens)
    (original_grad,) = torch.autograd.grad(original(tokens).pow(2).sum(), tokens)
    # rescaled to a fixed RMS the output's norm does not depend on the token's size: no gradient along it
    assert not torch.allclose(ours_grad, original_grad)
    assert (ours_grad * tokens).sum(-1).abs().max() < 1e-3 * (original_grad * tokens).sum(-1).abs().max()


def test_soft_tokens_minus_one_is_the_source_tokenizers_length_up_to_the_cap():
    """As the original's Phase 1 resolved it: a fixed K whatever the prompt's length."""
    states, mask = source_batch()
    for settings in (CROSS, DIT):
        uncapped = build({**settings, "soft_tokens": -1, "soft_tokens_cap": 64}, source_max_length=6).eval()
        assert uncapped(states, mask).soft_tokens.shape == (BATCH, 6, TARGET_DIM)
        capped = build({**settings, "soft_tokens": -1, "soft_tokens_cap": 4}, source_max_length=10**30).eval()
        assert capped(states, mask).soft_tokens.shape == (BATCH, 4, TARGET_DIM)
        assert capped(states[:, :3], mask[:, :3]).soft_tokens.shape == (BATCH, 4, TARGET_DIM)


def test_cross_translator_overfits_two_examples():
    """A source-blind output can at best predict the two targets' mean, about halving the loss:
    a 10x drop needs the gates to open and the queries to read the source."""
    torch.manual_seed(0)
    translator = CrossAttentionTranslator(
        SOURCE_DIM, target_embedding(), soft_tokens=K, depth=2, bottleneck=16, heads=4
    )
    states = torch.randn(2, SOURCE_LEN, SOURCE_DIM)  # [2, S, source_dim]
    mask = torch.ones(2, SOURCE_LEN, dtype=torch.bool)
    targets = translator.rms_match(torch.randn(2, K, TARGET_DIM))  # two distinct, reachable outputs
    optimizer = torch.optim.Adam(translator.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):  # ~200x in 60 steps over seeds 0-5; the brief allows 200
        loss = (translator(states, mask).soft_tokens - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-10:]) < losses[0] / 10, (losses[0], losses[-1])


def test_the_original_dit_samples_from_t_one_step_in_and_reads_no_positions():
    """dit_variant original: Euler steps read the velocity at t = 1/steps .. 1; no learned positions,
    and its source map starts as the identity."""
    translator = build(VARIANTS["dit-original"]).eval()
    assert isinstance(translator, OriginalDiTTranslator) and not hasattr(translator, "positions")
    torch.testing.assert_close(translator.source_condition.align.weight, torch.eye(SOURCE_DIM))
    times = []
    translator.time_embedding.register_forward_hook(lambda module, inputs, output: times.append(inputs[0][0].item()))
    states, mask = source_batch()
    translator(states, mask)
    steps = VARIANTS["dit-original"]["dit_steps_eval"]
    assert times == pytest.approx([(step + 1) / steps for step in range(steps)])
    ours = build(DIT).eval()
    times.clear()
    ours.time_embedding.register_forward_hook(lambda module, inputs, output: times.append(inputs[0][0].item()))
    ours(states, mask)
    assert times == pytest.approx([step / steps for step in range(steps)])


def test_the_original_dit_flow_loss_reads_the_padded_teacher_positions_too():
    states, mask = source_batch()
    teacher, teacher_mask = teacher_batch()
    masked = teacher_mask.clone()
    masked[:, -2:] = False
    losses = {}
    for name in ("dit-mean", "dit-original"):
        translator = build(VARIANTS[name]).train()
        perturb_(translator)
        for label, given in (("all", teacher_mask), ("masked", masked)):
            torch.manual_seed(3)
            losses[name, label] = translator(states, mask, teacher, given).flow_loss.item()
    assert losses["dit-original", "all"] == losses["dit-original", "masked"]
    assert losses["dit-mean", "all"] != losses["dit-mean", "masked"]


def test_sinusoidal_positions_let_the_cross_translator_see_the_order_of_the_source():
    states, _ = source_batch()
    mask = torch.ones(BATCH, SOURCE_LEN, dtype=torch.bool)
    outputs = {}
    for positions in ("none", "sinusoidal"):
        translator = build({**CROSS, "cross_positions": positions}).eval()
        perturb_(translator)
        with torch.no_grad():
            outputs[positions] = (translator(states, mask).soft_tokens, translator(states.flip(1), mask).soft_tokens)
    # without positions each query reads a set: the source's order cannot change the soft tokens
    assert torch.allclose(*outputs["none"], atol=1e-5)
    assert not torch.allclose(*outputs["sinusoidal"], atol=1e-3)
    with pytest.raises(ValueError, match="'cross_positions': 'learned' is not allowed; allowed: none, sinusoidal"):
        build({**CROSS, "cross_positions": "learned"})
