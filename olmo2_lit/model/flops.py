"""FLOPs per token from the config: the one count behind MFU in TensorBoard, benchmarks and docs."""

from __future__ import annotations

import json
from functools import lru_cache

import torch
from torch import nn

from olmo2_lit.model.config import ModelConfig


def linear_flops(*modules: nn.Module) -> int:
    """Forward FLOPs per token of every ``nn.Linear`` in ``modules`` (and their submodules), each
    applied once per token: ``2 * in_features * out_features`` (biases are not counted)."""
    return sum(
        2 * m.in_features * m.out_features
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.Linear)
    )


def flops_per_token(config: ModelConfig, sequence_length: int, *, training: bool = True) -> float:
    """Matmul FLOPs to process one token (forward + backward when ``training``).

    Builds the model on the meta device (no memory, cached per config) and asks it:
    :meth:`Transformer.flops_per_token`, which sums what each block's attention, MLP and other
    linears report about themselves. For the built-in components this is OLMo-core's count in its
    OLMo 2 runs (OLMO2.md §5): 2 FLOPs per multiply-add of every weight matmul (q, k, v, out, MLP,
    LM head; the input embedding is a lookup), plus causal attention scores and values
    ``2 * 2 * n_layers * T * n_heads * head_dim`` per token with no discount for the causal mask.
    Training is 3x the forward pass.
    """
    return float(_flops(json.dumps(config.to_dict(), sort_keys=True), sequence_length, training))


@lru_cache(maxsize=64)
def _flops(config_json: str, sequence_length: int, training: bool) -> int:
    from olmo2_lit.model.transformer import Transformer

    with torch.device("meta"):
        model = Transformer(ModelConfig.from_dict(json.loads(config_json)), init_weights=False)
    return model.flops_per_token(sequence_length, training=training)
