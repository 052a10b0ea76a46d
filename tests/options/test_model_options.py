"""Non-default values of ``model.config`` options change the model as they say (tests/options_coverage.py).

References: transformers' Olmo2ForCausalLM built from the same config (rope_theta, norm_eps), the truncated
normal's own moments (init_std, init_cutoff_factor), and plain arithmetic (vocab_pad_multiple).
"""

from __future__ import annotations

import math

import pytest
import torch

from olmo2_lit.model import ModelConfig, Transformer

transformers = pytest.importorskip("transformers")

from olmo2_lit.weights import convert_hf as C  # noqa: E402
from olmo2_lit.weights import pretrained as P  # noqa: E402


def _hf_pair(cfg: ModelConfig, tmp_path):
    """transformers' model for ``cfg`` with seeded O(1) weights, and ours imported from it."""
    hf_config = transformers.Olmo2Config(
        **C.model_config_to_hf_config(cfg, eos_token_id=1, pad_token_id=0, dtype="float32")
    )
    hf = transformers.Olmo2ForCausalLM(hf_config).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(hf.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.2 * noise if "norm" in name else 0.1 * noise)
    hf.save_pretrained(tmp_path / "hf")
    return hf, P.import_hf(tmp_path / "hf").eval()


@pytest.mark.parametrize(
    "override",
    [dict(rope_theta=10_000.0), dict(norm_eps=0.5)],
    ids=["rope_theta", "norm_eps"],
)
def test_rope_theta_and_norm_eps_change_the_logits_as_transformers_does(override, tmp_path):
    """Guards against a config value that is parsed and stored but not used (the model keeping OLMo 2's
    500,000 or 1e-6): ours equals transformers' with the same value, and differs from ours with the
    default value on the same weights. eps 0.5 is of the order of the normalized activations' mean square,
    so it moves every norm's output."""
    cfg = ModelConfig.tiny(d_model=64, n_heads=4, n_kv_heads=2, vocab_size=300, **override)
    hf, ours = _hf_pair(cfg, tmp_path)
    assert ours.config == cfg
    ids = torch.randint(0, 300, (2, 33), generator=torch.Generator().manual_seed(1))
    default = Transformer(ModelConfig.tiny(d_model=64, n_heads=4, n_kv_heads=2, vocab_size=300)).eval()
    default.load_state_dict(ours.state_dict())
    with torch.no_grad():
        expected, got, with_default = hf(input_ids=ids).logits, ours(ids), default(ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got - with_default).abs().max() > 1e-2


def test_rope_theta_sets_the_frequencies():
    """Position p, pair i rotates by p * theta^(-2i/D) (hand formula) for theta = 10,000."""
    model = Transformer(ModelConfig.tiny(rope_theta=10_000.0))
    d = model.config.head_dim
    model.rope.ensure(8, torch.device("cpu"))
    for p, i in ((1, 0), (5, 1), (7, d // 2 - 1)):
        angle = p * 10_000.0 ** (-2 * i / d)
        assert model.rope.cos[p, i].item() == pytest.approx(math.cos(angle), abs=1e-6)
        assert model.rope.sin[p, i + d // 2].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_init_std_and_cutoff_shape_every_weight():
    """OLMo 2's init draws every embedding and linear weight from N(0, init_std) cut at +-cutoff * std:
    with std 0.05 and cutoff 2 the weights reach but never pass 0.1, and their std is the truncated
    normal's, 0.05 * sqrt(1 - 2 c phi(c) / (2 Phi(c) - 1)) = 0.04398 for c = 2 (not 0.05 nor 0.02)."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(d_model=128, n_heads=4, mlp_hidden=256, init_std=0.05, init_cutoff_factor=2.0)
    model = Transformer(cfg)
    c = 2.0
    phi, cdf = math.exp(-c * c / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(c / math.sqrt(2)))
    expected_std = 0.05 * math.sqrt(1 - 2 * c * phi / (2 * cdf - 1))
    weights = {n: p for n, p in model.named_parameters() if p.ndim == 2}
    assert len(weights) == 2 + 7 * cfg.n_layers
    for name, w in weights.items():
        assert w.abs().max().item() <= 0.1 + 1e-7, name
        assert w.abs().max().item() > 0.098, name  # the cut is at 2 sigma, not 3
        assert w.std().item() == pytest.approx(expected_std, rel=0.05), name


@pytest.mark.parametrize(("multiple", "rows"), [(64, 320), (128, 384), (1, 300)])
def test_vocab_pad_multiple_sets_the_embedding_and_output_rows(multiple, rows):
    """vocab 300 padded to a multiple of 64 is 320 rows (default 128: 384; 1: no padding), in both the
    embedding and the output layer, and the logits have that many columns."""
    model = Transformer(ModelConfig.tiny(vocab_size=300, vocab_pad_multiple=multiple))
    assert model.embeddings.weight.shape[0] == rows
    assert model.lm_head.weight.shape[0] == rows
    assert model(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, rows)
