import model_reference as ref
import pytest
import torch

from olmo2_lit.model import BLOCKS, ModelConfig, OLMo0424Block, PreNormBlock, ReorderedNormBlock, Transformer
from olmo2_lit.model.norms import NonParametricLayerNorm, RMSNorm


def _ids(cfg, b=2, t=12, seed=0):
    return torch.randint(0, cfg.vocab_size, (b, t), generator=torch.Generator().manual_seed(seed))


def test_registry_names():
    """Guards the block names YAML uses."""
    assert {"reordered_norm", "pre_norm", "olmo0424"} <= set(BLOCKS.names())
    assert BLOCKS.get("reordered_norm") is ReorderedNormBlock


def test_reordered_norm_block_normalizes_sublayer_outputs():
    """Guards the OLMo 2 reordered norm (OLMO2.md §1.1): norms on the sublayer outputs, inside
    the residual branch."""
    cfg = ModelConfig.tiny(n_layers=1)
    block = Transformer(cfg).blocks[0]
    x = torch.randn(2, 5, cfg.d_model)
    rope = Transformer(cfg).rope
    h = x + block.attention_norm(block.attention(x, rope, None))
    expected = h + block.feed_forward_norm(block.feed_forward(h))
    torch.testing.assert_close(block(x, rope, None), expected)


def test_pre_norm_block_normalizes_sublayer_inputs():
    """Guards the Llama pre-norm layout: norms on the sublayer inputs."""
    cfg = ModelConfig.tiny(n_layers=1, block="pre_norm")
    model = Transformer(cfg)
    block, x = model.blocks[0], torch.randn(2, 5, cfg.d_model)
    assert isinstance(block, PreNormBlock)
    h = x + block.attention(block.attention_norm(x), model.rope, None)
    torch.testing.assert_close(block(x, model.rope, None), h + block.feed_forward(block.feed_forward_norm(h)))


def test_olmo0424_block_uses_nonparametric_layernorm_and_clipping():
    """Guards the OLMo-0424 block's parts (OLMO2.md §3.2): parameter-free LayerNorms, no QK-norm,
    and its attention clamping at 8.0 by default (the clamp itself is checked numerically below)."""
    model = Transformer(ModelConfig.tiny(block="olmo0424", qk_norm=False))
    block = model.blocks[0]
    assert isinstance(block, OLMo0424Block)
    assert isinstance(block.attention_norm, NonParametricLayerNorm)
    assert isinstance(block.feed_forward_norm, NonParametricLayerNorm)
    assert list(block.attention_norm.parameters()) == []
    assert block.attention.clip_qkv == 8.0 and block.attention.q_norm is None


def _attention_with_big_weights(cfg):
    """An attention whose q/k/v projections reach |x| ~ 20, so a clamp at 8 (or 2) bites hard."""
    model = Transformer(cfg)
    attn = model.blocks[0].attention
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for linear in (attn.w_q, attn.w_k, attn.w_v, attn.w_out):
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=gen) * 4 / cfg.d_model**0.5)
    x = torch.randn(2, 12, cfg.d_model, generator=gen) * 1.5
    return model, attn, x


@pytest.mark.parametrize(
    "overrides, clip",
    [
        (dict(clip_qkv=2.0, qk_norm=False, n_kv_heads=2, attention="eager"), 2.0),
        (dict(clip_qkv=2.0, qk_norm=False, attention="sdpa"), 2.0),
        (dict(block="olmo0424", qk_norm=False, norm="layer_norm_no_affine"), 8.0),
    ],
)
def test_clip_qkv_clamps_projections(overrides, clip):
    """Guards ``clip_qkv`` (OLMo-0424): the attention's output must equal a float64 hand
    computation that clamps q, k and v to +-clip right after projection, and must differ clearly
    from the same weights without the clamp, so an attention that ignores clip_qkv fails."""
    cfg = ModelConfig.tiny(**overrides)
    model, attn, x = _attention_with_big_weights(cfg)
    assert attn.clip_qkv == clip
    weights = dict(w_q=attn.w_q.weight, w_k=attn.w_k.weight, w_v=attn.w_v.weight, w_out=attn.w_out.weight)
    heads = dict(n_heads=cfg.n_heads, n_kv_heads=cfg.kv_heads, theta=cfg.rope_theta)
    with torch.no_grad():
        out = attn(x, model.rope, None).double()
    clipped = ref.causal_attention(x, **weights, **heads, clip=clip)
    unclipped = ref.causal_attention(x, **weights, **heads, clip=None)
    torch.testing.assert_close(out, clipped, rtol=1e-4, atol=1e-4)
    assert (clipped - unclipped).abs().max() > 1.0
    # the reference itself sees projections well past the clip
    assert (x.double() @ attn.w_v.weight.double().T).abs().max() > 2 * clip


def test_attention_without_clip_matches_reference():
    """Guards the reference above: with clip_qkv unset the attention equals the unclamped hand
    computation, so the clamp test compares against a reference that is right."""
    cfg = ModelConfig.tiny(qk_norm=False, n_kv_heads=1)
    model, attn, x = _attention_with_big_weights(cfg)
    weights = dict(w_q=attn.w_q.weight, w_k=attn.w_k.weight, w_v=attn.w_v.weight, w_out=attn.w_out.weight)
    with torch.no_grad():
        out = attn(x, model.rope, None).double()
    expected = ref.causal_attention(x, **weights, n_heads=4, n_kv_heads=1, theta=cfg.rope_theta, clip=None)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_user_block_by_dotted_path_runs():
    """Guards selecting a user's own block by dotted path (tests/model/my_blocks.py, the docs'
    example): it computes its formula, and every parameter gets a gradient (an unused norm would
    stop DDP training)."""
    cfg = ModelConfig.tiny(block="my_blocks.ParallelBlock")
    model = Transformer(cfg)
    block = model.blocks[0]
    assert type(block).__name__ == "ParallelBlock"
    x = torch.randn(2, 5, cfg.d_model)
    expected = x + block.attention(block.attention_norm(x), model.rope, None)
    expected = expected + block.feed_forward(block.feed_forward_norm(x))
    torch.testing.assert_close(block(x, model.rope, None), expected)
    ids = _ids(cfg)
    model(ids).logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_dotted_path_must_be_a_block():
    """Guards the error for a dotted path that is not a Block or does not import."""
    with pytest.raises(ValueError, match="not a subclass of Block"):
        ModelConfig.tiny(block="torch.nn.Linear")
    with pytest.raises(ValueError, match="could not be imported"):
        ModelConfig.tiny(block="no_such_module.Block")


def test_qk_norm_is_full_width_before_head_split():
    """Guards OLMo 2's QK-norm over the full projected width, not per head (OLMO2.md §1.2)."""
    cfg = ModelConfig.tiny(n_kv_heads=2)
    attn = Transformer(cfg).blocks[0].attention
    assert isinstance(attn.q_norm, RMSNorm)
    assert attn.q_norm.weight.shape == (cfg.n_heads * cfg.head_dim,)
    assert attn.k_norm.weight.shape == (cfg.kv_heads * cfg.head_dim,)


def test_no_qk_norm_ablation():
    """Guards the qk_norm: false ablation switch."""
    assert Transformer(ModelConfig.tiny(qk_norm=False)).blocks[0].attention.q_norm is None


@pytest.mark.parametrize("mlp", ["swiglu", "gelu"])
@pytest.mark.parametrize("norm", ["rms_norm", "layer_norm", "layer_norm_no_affine"])
def test_component_grid_trains_one_step(mlp, norm):
    """Guards every MLP x norm combination: builds, runs, and every parameter gets a finite grad."""
    cfg = ModelConfig.tiny(mlp=mlp, norm=norm)
    model = Transformer(cfg)
    ids = _ids(cfg)
    loss = torch.nn.functional.cross_entropy(model(ids)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
