"""FLOPs per token from the config: the one count behind MFU in TensorBoard, benchmarks and docs."""

from __future__ import annotations

from olmo2_lit.model.config import ModelConfig


def flops_per_token(config: ModelConfig, sequence_length: int, *, training: bool = True) -> float:
    """Matmul FLOPs to process one token (forward + backward when ``training``).

    Counts like OLMo-core's ``num_flops_per_token`` (OLMO2.md §5): 2 FLOPs per multiply-add for
    every weight matmul (q, k, v, out, MLP, LM head; the input embedding is a lookup), plus causal
    attention scores and values ``2 * 2 * n_layers * T * d_model`` per token, no discount for the
    causal mask, no recompute or padding. Training is 3x the forward pass.
    """
    d, hd = config.d_model, config.head_dim
    attn_proj = d * (config.n_heads * hd) * 2 + d * (config.kv_heads * hd) * 2  # q, out; k, v
    mlp_mats = 3 if config.mlp == "swiglu" else 2
    per_layer = attn_proj + mlp_mats * d * config.mlp_hidden
    matmul_params = config.n_layers * per_layer + d * config.padded_vocab_size
    forward = 2 * matmul_params + 2 * 2 * config.n_layers * sequence_length * d
    return float(3 * forward if training else forward)
