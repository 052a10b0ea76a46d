import pytest
import torch

from olmo2_lit.model import BLOCKS, ModelConfig, OLMo0424Block, PreNormBlock, ReorderedNormBlock, Transformer
from olmo2_lit.model.norms import NonParametricLayerNorm, RMSNorm


def _ids(cfg, b=2, t=12, seed=0):
    return torch.randint(0, cfg.vocab_size, (b, t), generator=torch.Generator().manual_seed(seed))


def test_registry_names():
    assert {"reordered_norm", "pre_norm", "olmo0424"} <= set(BLOCKS.names())
    assert BLOCKS.get("reordered_norm") is ReorderedNormBlock


def test_reordered_norm_block_normalizes_sublayer_outputs():
    cfg = ModelConfig.tiny(n_layers=1)
    block = Transformer(cfg).blocks[0]
    x = torch.randn(2, 5, cfg.d_model)
    rope = Transformer(cfg).rope
    h = x + block.attention_norm(block.attention(x, rope, None))
    expected = h + block.feed_forward_norm(block.feed_forward(h))
    torch.testing.assert_close(block(x, rope, None), expected)


def test_pre_norm_block_normalizes_sublayer_inputs():
    cfg = ModelConfig.tiny(n_layers=1, block="pre_norm")
    model = Transformer(cfg)
    block, x = model.blocks[0], torch.randn(2, 5, cfg.d_model)
    assert isinstance(block, PreNormBlock)
    h = x + block.attention(block.attention_norm(x), model.rope, None)
    torch.testing.assert_close(block(x, model.rope, None), h + block.feed_forward(block.feed_forward_norm(h)))


def test_olmo0424_block_uses_nonparametric_layernorm_and_clipping():
    model = Transformer(ModelConfig.tiny(block="olmo0424", qk_norm=False))
    block = model.blocks[0]
    assert isinstance(block, OLMo0424Block)
    assert isinstance(block.attention_norm, NonParametricLayerNorm)
    assert list(block.attention_norm.parameters()) == []
    assert block.attention.clip_qkv == 8.0 and block.attention.q_norm is None
    # clipping is live: huge projections are clamped
    with torch.no_grad():
        block.attention.w_v.weight.fill_(100.0)
    x = torch.ones(1, 3, model.config.d_model)
    v = block.attention.w_v(x).clamp(-8, 8)
    assert v.abs().max() == 8.0


def test_user_block_by_dotted_path_runs():
    cfg = ModelConfig.tiny(block="my_blocks.ParallelBlock")
    model = Transformer(cfg)
    assert type(model.blocks[0]).__name__ == "ParallelBlock"
    out = model(_ids(cfg))
    assert out.shape == (2, 12, cfg.padded_vocab_size) and torch.isfinite(out).all()


def test_dotted_path_must_be_a_block():
    with pytest.raises(ValueError, match="not a subclass of Block"):
        ModelConfig.tiny(block="torch.nn.Linear")
    with pytest.raises(ValueError, match="could not be imported"):
        ModelConfig.tiny(block="no_such_module.Block")


def test_qk_norm_is_full_width_before_head_split():
    cfg = ModelConfig.tiny(n_kv_heads=2)
    attn = Transformer(cfg).blocks[0].attention
    assert isinstance(attn.q_norm, RMSNorm)
    assert attn.q_norm.weight.shape == (cfg.n_heads * cfg.head_dim,)
    assert attn.k_norm.weight.shape == (cfg.kv_heads * cfg.head_dim,)


def test_no_qk_norm_ablation():
    assert Transformer(ModelConfig.tiny(qk_norm=False)).blocks[0].attention.q_norm is None


@pytest.mark.parametrize("mlp", ["swiglu", "gelu"])
@pytest.mark.parametrize("norm", ["rms_norm", "layer_norm", "layer_norm_no_affine"])
def test_component_grid_trains_one_step(mlp, norm):
    cfg = ModelConfig.tiny(mlp=mlp, norm=norm)
    model = Transformer(cfg)
    ids = _ids(cfg)
    loss = torch.nn.functional.cross_entropy(model(ids)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
