"""The OLMo 2 transformer in plain torch (no Lightning, no distribution), built from registries.

Importing this package registers every built-in component.
"""

from olmo2_lit.model import attention, blocks, feed_forward, init, norms  # noqa: F401  (registers)
from olmo2_lit.model.attention import Attention, AttentionBackend
from olmo2_lit.model.blocks import Block, OLMo0424Block, PreNormBlock, ReorderedNormBlock
from olmo2_lit.model.config import PRESETS, ModelConfig
from olmo2_lit.model.feed_forward import FeedForward
from olmo2_lit.model.flops import flops_per_token
from olmo2_lit.model.norms import Norm
from olmo2_lit.model.registry import ATTENTION, BLOCKS, INITS, MLPS, NORMS, Registry
from olmo2_lit.model.transformer import Transformer

__all__ = [
    "ATTENTION",
    "BLOCKS",
    "INITS",
    "MLPS",
    "NORMS",
    "PRESETS",
    "Attention",
    "AttentionBackend",
    "Block",
    "FeedForward",
    "ModelConfig",
    "Norm",
    "OLMo0424Block",
    "PreNormBlock",
    "Registry",
    "ReorderedNormBlock",
    "Transformer",
    "flops_per_token",
]
