import torch

from olmo2_lit.model.norms import LayerNorm, NonParametricLayerNorm, RMSNorm
from olmo2_lit.model.rope import RotaryEmbedding


def test_rmsnorm_in_fp32_then_cast():
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    x = torch.randn(3, 8, dtype=torch.float64)
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight.double()
    torch.testing.assert_close(norm(x.float()).double(), ref, atol=1e-6, rtol=0)
    xb = x.bfloat16()
    out = norm(xb)
    assert out.dtype == torch.bfloat16
    # weight multiply happens in fp32 before the single rounding to bf16 (OLMo-core order)
    expected = (
        xb.float() * torch.rsqrt(xb.float().pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    ).bfloat16()
    assert torch.equal(out, expected)


def test_layernorms():
    x = torch.randn(4, 16)
    torch.testing.assert_close(
        NonParametricLayerNorm(16, eps=1e-5)(x), torch.nn.functional.layer_norm(x, (16,))
    )
    assert len(list(LayerNorm(16, eps=1e-5).parameters())) == 1


def test_rope_preserves_norm_and_relative_position():
    rope = RotaryEmbedding(head_dim=8, theta=500_000.0, max_sequence_length=4)
    q = torch.randn(1, 1, 10, 8)
    k = torch.randn(1, 1, 10, 8)
    rq, rk = rope(q, k)  # cache grows from 4 to 10 on demand
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    # a score depends only on the offset: shift both by 3 positions
    same_q = q[:, :, :1].expand(1, 1, 10, 8)
    same_k = k[:, :, :1].expand(1, 1, 10, 8)
    a, b = rope(same_q, same_k)
    s1 = (a[0, 0, 5] * b[0, 0, 2]).sum()
    s2 = (a[0, 0, 8] * b[0, 0, 5]).sum()
    torch.testing.assert_close(s1, s2, atol=1e-5, rtol=0)
