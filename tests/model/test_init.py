"""Init schemes checked against their formulas, per matrix, at a few sigma of the sampling noise.

The std of n samples has a relative sampling noise of about 1/sqrt(2n) (0.28% for the 65k samples
of a 256 x 256 matrix), so a 5-sigma tolerance still catches a missing factor 2 (41%), a wrong
cutoff or a wrong layer index.
"""

import math

import pytest
import torch
from model_reference import truncated_normal_std
from torch import nn

from olmo2_lit.model import INITS, ModelConfig, Transformer
from olmo2_lit.model.norms import Norm

CUTOFF = 3.0


def _assert_trunc_normal(weight: torch.Tensor, std: float, what: str) -> None:
    """Sample std within 5 sigma of the truncated normal's std; values cut at exactly +-3 std."""
    w = weight.detach().double().flatten()
    expected = truncated_normal_std(std, CUTOFF)
    noise = expected / math.sqrt(2 * w.numel())
    assert abs(w.std().item() - expected) < 5 * noise, (what, w.std().item(), expected)
    assert abs(w.mean().item()) < 5 * expected / math.sqrt(w.numel()), what
    peak = w.abs().max().item()
    # cut at 3 std (float32 rounding aside), and not tighter: ~0.1% of samples lie beyond 2.9 std
    assert 2.9 * std < peak <= CUTOFF * std * (1 + 1e-6), (what, peak / std)


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_olmo2_init_truncated_normal_002():
    """Guards the OLMo 2 init (OLMO2.md §2.1): every embedding and linear from N(0, 0.02) cut at
    +-3 sigma (so its std is 0.02 * 0.98658), no depth scaling, norm weights at exactly 1."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(d_model=256, n_heads=4, mlp_hidden=256, vocab_size=256))
    weights = [model.embeddings, *_linears(model)]
    assert len(weights) == 1 + 2 * 7 + 1
    for module in weights:
        _assert_trunc_normal(module.weight, 0.02, module)
    norms = [m for m in model.modules() if isinstance(m, Norm)]
    assert len(norms) == 2 * 4 + 1
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))


@pytest.mark.parametrize("mlp", ["swiglu", "gelu", "my_mlps.FourMatrixMLP"])
def test_olmo0424_scaled_init_per_layer(mlp):
    """Guards the OLMo-0424 scaled init (OLMO2.md §2.1) per matrix, against its formula: output
    projections (as each component reports them) 1/sqrt(2 * fan_in * (layer + 1)), every other
    linear and the embeddings 1/sqrt(fan_in). Fails for a dropped factor 2, a layer index off by
    one, or an output projection recognized by name (the user MLP names an input ``w2``)."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(
        d_model=256, n_layers=2, n_heads=4, mlp_hidden=256, vocab_size=256, init="olmo0424_scaled", mlp=mlp
    )
    model = Transformer(cfg)
    _assert_trunc_normal(model.embeddings.weight, 1 / math.sqrt(256), "embeddings")
    _assert_trunc_normal(model.lm_head.weight, 1 / math.sqrt(256), "lm_head")
    for layer, block in enumerate(model.blocks):
        outputs = [block.attention.w_out, *block.feed_forward.output_projections()]
        if mlp == "my_mlps.FourMatrixMLP":
            assert block.feed_forward.output_projections() == [block.feed_forward.back]
        assert len(outputs) == 2
        for linear in _linears(block):
            fan_in = linear.in_features
            if any(linear is o for o in outputs):
                std = 1 / math.sqrt(2 * fan_in * (layer + 1))
            else:
                std = 1 / math.sqrt(fan_in)
            _assert_trunc_normal(linear.weight, std, (layer, linear))


def test_scaled_init_needs_output_projections():
    """Guards against a user MLP silently getting an unscaled output projection: without
    ``output_projections()`` the scaled init fails naming the class; the olmo2 init does not need it."""
    cfg = ModelConfig.tiny(mlp="my_mlps.NoOutputsMLP")
    Transformer(cfg)
    with pytest.raises(NotImplementedError, match="NoOutputsMLP.output_projections"):
        Transformer(cfg.replace(init="olmo0424_scaled"))


def test_init_registry_and_reset():
    """Guards ``reset_parameters``: norm weights go back to exactly 1 after being changed."""
    assert {"olmo2", "olmo0424_scaled"} <= set(INITS.names())
    model = Transformer(ModelConfig.tiny())
    with torch.no_grad():
        model.blocks[0].attention_norm.weight.fill_(3.0)
    model.reset_parameters()
    assert torch.equal(model.blocks[0].attention_norm.weight, torch.ones(32))
