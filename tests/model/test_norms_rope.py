"""Norms and RoPE against independent float64 hand computations (``model_reference``), no
transformers needed, at tolerances near float32 rounding, and with inputs where eps and theta
visibly change the result."""

import model_reference as ref
import pytest
import torch

from olmo2_lit.model.norms import LayerNorm, NonParametricLayerNorm, Norm, RMSNorm
from olmo2_lit.model.rope import RotaryEmbedding


def _weighted_rms_norm(size=64, eps=1e-6):
    norm = RMSNorm(size, eps=eps)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, size))
    return norm


def test_rmsnorm_matches_hand_computation():
    """Guards the RMSNorm formula x / sqrt(mean(x^2) + eps) * w (OLMO2.md §1.3) in float32, to a
    few float32 ulps of a float64 hand computation."""
    norm = _weighted_rms_norm()
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(norm(x).double(), ref.rms_norm(x, norm.weight, 1e-6), rtol=1e-6, atol=0)


@pytest.mark.parametrize("scale", [1e-3, 1e-4])
def test_rmsnorm_eps_matters_for_tiny_inputs(scale):
    """Guards against a dropped or misplaced eps: with mean(x^2) near eps = 1e-6, the output with
    eps inside the sqrt differs from one without eps by a factor of 1.4 (scale 1e-3) to 10 (1e-4)."""
    norm = _weighted_rms_norm()
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(1)) * scale
    expected = ref.rms_norm(x, norm.weight, 1e-6)
    torch.testing.assert_close(norm(x).double(), expected, rtol=1e-5, atol=0)
    without_eps = ref.rms_norm(x, norm.weight, 0.0)
    assert ((without_eps - expected).abs() > 0.2 * expected.abs()).all()


def test_rmsnorm_bf16_rounds_once_after_the_weight():
    """Guards OLMo-core's order in bf16 (OLMO2.md §1.3): normalize and multiply the weight in
    float32, then round to bf16 once. HF's order (round, then multiply in bf16) rounds twice and
    differs on this input, so the test can tell the two apart."""
    norm = _weighted_rms_norm()
    xb = torch.randn(8, 64, generator=torch.Generator().manual_seed(2)).bfloat16()
    out = norm(xb)
    assert out.dtype == torch.bfloat16
    expected = ref.rms_norm(xb, norm.weight, 1e-6).bfloat16()
    assert torch.equal(out, expected)
    hf_order = ref.rms_norm(xb, torch.ones(64), 1e-6).bfloat16() * norm.weight.bfloat16()
    assert not torch.equal(out, hf_order)


@pytest.mark.parametrize("scale", [3.0, 1e-3])
def test_layernorms_match_hand_computation(scale):
    """Guards both LayerNorms (OLMo-0424, OLMO2.md §3.2): (x - mean) / sqrt(var + eps), weight 1
    at init, no bias; at scale 1e-3 the variance is of the order of eps, so eps must be right."""
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(3)) * scale + 0.5 * scale
    expected = ref.layer_norm(x, 1e-6)
    for norm in (NonParametricLayerNorm(64, eps=1e-6), LayerNorm(64, eps=1e-6)):
        torch.testing.assert_close(norm(x).double(), expected, rtol=1e-5, atol=1e-6)
    if scale < 1:  # variance ~1e-6: dropping eps moves the output by far more than the tolerance
        assert (ref.layer_norm(x, 0.0) - expected).abs().max() > 0.1
    assert [p.shape for p in LayerNorm(64, eps=1e-6).parameters()] == [(64,)]
    assert list(NonParametricLayerNorm(64, eps=1e-6).parameters()) == []


def test_rope_matches_hand_computation_at_theta_500000():
    """Guards RoPE's frequencies theta^(-2i/D) with theta = 500,000 (OLMO2.md §1.4), the "rotate
    half" pairing (i, i + D/2) of HF's layout and the rotation direction, at head_dim 128 and
    positions 0..1023, against a float64 hand computation. A theta 10% off moves the second
    frequency's angle at position 1023 by 1.2 rad, far outside the tolerance."""
    theta = 500_000.0
    rope = RotaryEmbedding(head_dim=128, theta=theta, max_sequence_length=16)  # grows on demand
    gen = torch.Generator().manual_seed(4)
    q, k = torch.randn(1, 2, 1024, 128, generator=gen), torch.randn(1, 1, 1024, 128, generator=gen)
    rq, rk = rope(q, k)
    tol = dict(rtol=0, atol=1e-3)
    torch.testing.assert_close(rq.double(), ref.rope(q, theta), **tol)
    torch.testing.assert_close(rk.double(), ref.rope(k, theta), **tol)
    wrong = ref.rope(q, 1.1 * theta)
    assert (rq.double() - wrong).abs().max() > 100 * tol["atol"]
    # float32 error grows with the position; near the start it is a few ulps
    torch.testing.assert_close(rq[:, :, :16].double(), ref.rope(q, theta)[:, :, :16], rtol=0, atol=5e-6)


def test_rope_preserves_norm_and_depends_on_offset_only():
    """Guards the property attention relies on: a q.k score depends only on the position offset."""
    rope = RotaryEmbedding(head_dim=8, theta=500_000.0, max_sequence_length=4)
    q, k = torch.randn(1, 1, 1, 8).expand(1, 1, 10, 8), torch.randn(1, 1, 1, 8).expand(1, 1, 10, 8)
    a, b = rope(q, k)
    torch.testing.assert_close(a.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(
        (a[0, 0, 5] * b[0, 0, 2]).sum(), (a[0, 0, 8] * b[0, 0, 5]).sum(), atol=1e-5, rtol=0
    )


def test_norm_with_parameters_must_implement_reset():
    """Guards against a user's norm silently keeping stale weights on re-init: the base class's
    reset refuses a norm that has parameters, naming it; a parameter-free norm needs nothing."""

    class ScaleNorm(Norm):
        def __init__(self, size, *, eps):
            super().__init__(size, eps=eps)
            self.gain = torch.nn.Parameter(torch.ones(()))

    with pytest.raises(NotImplementedError, match="ScaleNorm has parameters but no reset_parameters"):
        ScaleNorm(8, eps=1e-6).reset_parameters()
    NonParametricLayerNorm(8, eps=1e-6).reset_parameters()
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.fill_(3.0)
    norm.reset_parameters()
    assert torch.equal(norm.weight, torch.ones(8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_applies_its_weight(dtype):
    """``norm: layer_norm`` (OLMo-0424's parametric LayerNorm) with a trained, non-unit weight equals
    torch's layer_norm with that weight and no bias, computed in fp32 and cast back."""
    torch.manual_seed(0)
    norm = LayerNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    x = torch.randn(3, 5, 16).to(dtype)
    expected = torch.nn.functional.layer_norm(x.float(), (16,), norm.weight.float(), None, 1e-5).to(dtype)
    assert torch.equal(norm(x), expected)
    assert not torch.equal(norm(x), torch.nn.functional.layer_norm(x.float(), (16,), eps=1e-5).to(dtype))
