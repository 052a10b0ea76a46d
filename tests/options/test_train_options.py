"""Non-default values of the optimizer, parameter-group, schedule and parallelize options change the update
as they say (tests/options_coverage.py). References: Adam written out by hand in float64, OLMo-core's own
SkipStepAdamW, torchao's recipe configs, and hand-computed schedule values."""

from __future__ import annotations

import pytest
import torch
from schedule_helpers import lrs
from torch import nn

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.optim import AdamW
from olmo2_lit.train.parallelize import ParallelizeConfig, parallelize
from olmo2_lit.train.schedules import Constant, LinearDecay, WarmupStableDecay


def _hand_adamw(p0, grads, *, lr, betas, eps, wd):
    """Decoupled AdamW with bias correction, one step per grad, in float64."""
    p, m, v = (
        p0.double().clone(),
        torch.zeros_like(p0, dtype=torch.float64),
        torch.zeros_like(p0, dtype=torch.float64),
    )
    for k, g in enumerate(grads, 1):
        g = g.double()
        p = p * (1 - lr * wd)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** k), v / (1 - betas[1] ** k)
        p = p - lr * m_hat / (v_hat.sqrt() + eps)
    return p


def _steps(opt, params, grads_per_step):
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize("fused", [None, True, False])
def test_adamw_betas_eps_and_weight_decay_are_the_update(fused):
    """Three steps of our AdamW with betas (0.5, 0.7), eps 0.05 (as large as the gradients' scale, so it
    shows) and weight decay 0.3 equal Adam written out by hand with those values; with OLMo 2's defaults
    the result differs. ``fused`` picks the kernel: true the fused one, false torch's own choice (the
    per-parameter loop on CPU), the default the multi-tensor path; all give the same numbers."""
    gen = torch.Generator().manual_seed(0)
    p0 = [torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)]
    grads = [[0.1 * torch.randn(p.shape, generator=gen) for p in p0] for _ in range(3)]
    hyper = dict(lr=0.01, betas=(0.5, 0.7), eps=0.05, weight_decay=0.3)
    params = [nn.Parameter(p.clone()) for p in p0]
    opt = AdamW(params, fused=fused, **hyper)
    _steps(opt, params, grads)
    for p, start, i in zip(params, p0, range(2)):
        expected = _hand_adamw(start, [g[i] for g in grads], lr=0.01, betas=(0.5, 0.7), eps=0.05, wd=0.3)
        torch.testing.assert_close(p.detach().double(), expected, atol=1e-7, rtol=1e-6)
    assert opt.defaults["fused"] is (True if fused else None)
    assert opt.defaults["foreach"] is {None: True, True: None, False: None}[fused]
    default_params = [nn.Parameter(p.clone()) for p in p0]
    _steps(AdamW(default_params, lr=0.01), default_params, grads)
    assert not torch.allclose(default_params[0], params[0], atol=1e-4)


@pytest.mark.parametrize("foreach", [False, True])
def test_skip_step_adamw_non_default_options_equal_olmo_cores(foreach):
    """SkipStepAdamW with every option off its default (betas, eps, weight decay, a 12-value window, 2 sigma,
    float64 moments) against OLMo-core's own class with the same values: the same steps are skipped and the
    parameters and moments are bitwise equal. With the defaults (128 values, 6 sigma) none of these
    steps would be skipped: the window and sigma are what decide."""
    from olmo_core.optim.adamw import SkipStepAdamW as Reference

    from olmo2_lit.train.skip_step import SkipStepAdamW

    kwargs = dict(
        lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05, rolling_interval_length=12,
        sigma_factor=2, dtype=torch.float64, foreach=foreach,
    )  # fmt: skip

    def run(cls, **kw):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
        opt = cls(model.parameters(), **kw)
        gen = torch.Generator().manual_seed(1)
        skipped = []
        for step in range(40):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            loss = 3.0 + 0.1 * torch.randn((), generator=gen) + (1.0 if step in (20, 33) else 0.0)
            opt.latest_loss, opt.latest_grad_norm = loss, 1.0 + 0.1 * torch.randn((), generator=gen)
            opt.step()
            skipped.append(step) if opt.step_skipped.item() else None
        return model, opt, skipped

    ours, ours_opt, ours_skips = run(SkipStepAdamW, **kwargs)
    ref, ref_opt, ref_skips = run(Reference, **kwargs)
    assert ours_skips == ref_skips and 20 in ours_skips
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p, q)
        assert ours_opt.state[p]["exp_avg"].dtype == torch.float64
        assert torch.equal(ours_opt.state[p]["exp_avg_sq"], ref_opt.state[q]["exp_avg_sq"])
    _, _, default_skips = run(SkipStepAdamW, lr=1e-2, foreach=foreach)
    assert default_skips == []


def test_token_units_of_constant_and_wsd_count_tokens_not_steps():
    """``units: tokens`` reads warmup, decay and t_max in tokens: at 100 tokens per step, step k runs at the
    factor of 100 k tokens. Constant(warmup=400 tokens): 0.25, 0.5, 0.75, 1; WSD(warmup 200, decay 400,
    t_max 1000, alpha_f 0.2): 0.5, 1, 1, 1, 1, 1 - 0.8 * 0/400 ... (hand values below). In steps, the same
    numbers would be 400 and 1000 steps: every LR here would be tiny."""
    assert lrs(Constant(warmup=400, units="tokens"), steps=5, tokens_per_step=100) == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0]
    )
    wsd = WarmupStableDecay(warmup=200, decay=400, t_max=1000, alpha_f=0.2, units="tokens")
    # decay from 600 to 1000 tokens: 1 - 0.8 * (t - 600) / 400
    expected = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2]
    assert lrs(wsd, steps=11, tokens_per_step=100) == pytest.approx(expected)
    assert lrs(Constant(warmup=400), steps=2, tokens_per_step=100) == pytest.approx([1 / 400, 2 / 400])


def test_linear_decay_alpha_f_is_the_floor():
    """LinearDecay(t_max 4, alpha_f 0.25): 1 - 0.75 t / 4 down to 0.25 at t_max, and it stays there."""
    assert lrs(LinearDecay(t_max=4, alpha_f=0.25), steps=6, tokens_per_step=1) == pytest.approx(
        [1 - 0.75 / 4, 1 - 1.5 / 4, 1 - 2.25 / 4, 0.25, 0.25, 0.25]
    )


def test_activation_checkpointing_recomputes_each_block_in_the_backward(monkeypatch):
    """With activation_checkpointing each block's forward runs twice per training step (once more in the
    backward, to rebuild its activations); without it, once."""
    model = Transformer(ModelConfig.tiny())
    block_class = type(model.blocks[0])
    forward, calls = block_class.forward, []
    monkeypatch.setattr(
        block_class, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k)
    )
    counts = {}
    for on in (False, True):
        model = Transformer(ModelConfig.tiny())
        parallelize(model, ParallelizeConfig(activation_checkpointing=on))
        calls.clear()
        model(torch.randint(0, 256, (2, 16))).sum().backward()
        counts[on] = len(calls)
    assert counts == {False: 2, True: 4}


@pytest.mark.parametrize("recipe", ["rowwise", "rowwise_with_gw_hp"])
def test_float8_recipe_is_torchaos_recipe(recipe):
    """Each converted layer carries torchao's config for the recipe named (rowwise: one scale per row, with
    the weight gradient in high precision for rowwise_with_gw_hp), not the default tensorwise one."""
    from torchao.float8 import Float8LinearConfig
    from torchao.float8.float8_linear import Float8Linear

    model = Transformer(ModelConfig.tiny())
    parallelize(model, ParallelizeConfig(float8=recipe, float8_emulate=True))
    layers = [m for m in model.modules() if isinstance(m, Float8Linear)]
    assert len(layers) == 7 * 2
    expected = Float8LinearConfig.from_recipe_name(recipe)
    tensorwise = Float8LinearConfig.from_recipe_name("tensorwise")
    for layer in layers:
        for field in ("cast_config_input", "cast_config_weight", "cast_config_grad_output"):
            assert getattr(layer.config, field) == getattr(expected, field)
        assert layer.config.cast_config_input != tensorwise.cast_config_input
