"""FLOPs per token: each component's own report, summed, against a hand count and OLMo-core."""

import pytest
import torch

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token


def _hand_count(cfg: ModelConfig, seq_len: int, mlp_matmul_params: int) -> int:
    """Training FLOPs per token by hand: 6 per weight of every matmul (q, k, v, out, MLP, LM head)
    plus 12 * n_heads * head_dim * T per layer for scores and values, no causal discount."""
    d, hd = cfg.d_model, cfg.head_dim
    attention = 2 * d * cfg.n_heads * hd + 2 * d * cfg.kv_heads * hd
    per_layer = 6 * (attention + mlp_matmul_params) + 12 * cfg.n_heads * hd * seq_len
    return cfg.n_layers * per_layer + 6 * d * cfg.padded_vocab_size


@pytest.mark.parametrize("preset", ["olmo2_1b", "olmo2_7b", "olmo2_13b", "olmo2_32b"])
def test_builtin_presets_match_hand_count(preset):
    """Guards the MFU numerator of the published sizes (GQA included) against a hand count."""
    cfg = ModelConfig.preset_config(preset)
    expected = _hand_count(cfg, 4096, 3 * cfg.d_model * cfg.mlp_hidden)
    assert flops_per_token(cfg, 4096) == expected
    assert flops_per_token(cfg, 4096, training=False) * 3 == expected


def test_gelu_mlp_counts_two_matmuls():
    """Guards against a fixed SwiGLU count for every MLP: GELU has 2 matrices, not 3."""
    cfg = ModelConfig.olmo2_1b(mlp="gelu")
    assert flops_per_token(cfg, 2048) == _hand_count(cfg, 2048, 2 * cfg.d_model * cfg.mlp_hidden)


def test_user_mlp_with_four_matmuls():
    """Guards against FLOPs decided by component name: a user MLP with 4 matmuls (gate, up, a
    hidden-to-hidden mix, down), selected by dotted path, is counted from its own report."""
    cfg = ModelConfig.tiny(d_model=64, mlp_hidden=96, mlp="my_mlps.FourMatrixMLP")
    d, h = cfg.d_model, cfg.mlp_hidden
    mlp_params = d * h + d * h + h * h + h * d
    assert flops_per_token(cfg, 64) == _hand_count(cfg, 64, mlp_params)
    model = Transformer(cfg)
    assert model.blocks[0].feed_forward.flops_per_token() == 2 * mlp_params
    assert model.flops_per_token(64) == flops_per_token(cfg, 64)


def test_counts_every_matmul_weight_once():
    """Guards the sum over components: the weight part equals 6 x (every 2-D weight except the
    input embedding, which is a lookup), counted from the built model's parameters."""
    cfg = ModelConfig.olmo2_32b()
    with torch.device("meta"):
        model = Transformer(cfg)
    matmul_params = (
        sum(p.numel() for p in model.parameters() if p.ndim == 2) - model.embeddings.weight.numel()
    )
    attention = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * 4096
    assert flops_per_token(cfg, 4096) == 6 * matmul_params + attention


def test_matches_olmo_core():
    """Guards the claim that MFU counts like OLMo-core, against OLMo-core's own functions on its own
    OLMo 2 7B model: the same after the two documented convention differences. OLMo-core 3.0 counts
    the weights of its norms (QK-norm, the LM head's norm) as matmul weights, and counts only the
    causal (query, key) pairs, T(T+1)/2 per sequence; its OLMo 2 runs (v1/v2) counted T per token,
    as we do ("we follow the convention and do not account for sparsity in causal attention")."""
    pytest.importorskip("olmo_core")
    from olmo_core.nn.feed_forward import FeedForward as OCFeedForward
    from olmo_core.nn.layer_norm import LayerNorm as OCNorm
    from olmo_core.nn.transformer import TransformerConfig

    cfg = ModelConfig.olmo2_7b()
    oc_model = TransformerConfig.olmo2_7B(vocab_size=cfg.padded_vocab_size).build(init_device="meta")
    T = 4096
    norm_weights = sum(p.numel() for m in oc_model.modules() if isinstance(m, OCNorm) for p in m.parameters())
    block_norms = sum(
        p.numel()
        for b in oc_model.blocks.values()
        for m in (b.attention_norm, b.feed_forward_norm)
        for p in m.parameters()
    )
    counted_norms = norm_weights - block_norms  # OC's block sums attention + MLP only
    causal = cfg.n_layers * (12 * cfg.n_heads * cfg.head_dim * (T * (T + 1) // 2) // T)
    full = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * T
    assert flops_per_token(cfg, T) == oc_model.num_flops_per_token(T) - 6 * counted_norms - causal + full
    # The formula of OLMo-core's OLMo 2 era, 6 * non-embedding params + 12 * n * h * q * t, with
    # OLMo-core's own parameter count (norm weights included there, as above).
    oc_non_embedding = TransformerConfig.olmo2_7B(vocab_size=cfg.padded_vocab_size).num_non_embedding_params
    assert flops_per_token(cfg, T) == 6 * (oc_non_embedding - norm_weights) + full
    # The MLP has no norm inside: equal outright.
    oc_mlp = OCFeedForward(d_model=cfg.d_model, hidden_size=cfg.mlp_hidden, bias=False, init_device="meta")
    with torch.device("meta"):
        ours = Transformer(cfg.replace(n_layers=1), init_weights=False).blocks[0].feed_forward
    assert 3 * ours.flops_per_token() == oc_mlp.num_flops_per_token(T)
