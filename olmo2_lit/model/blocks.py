"""Transformer blocks. A variant is a subclass that overrides ``forward``, not a flag.

Register your own in your own module and select it by dotted path in YAML
(``model.config.block: my_lab.blocks.MyBlock``), or with ``@BLOCKS.register("my_block")`` in a
module that is imported before the config is parsed.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from olmo2_lit.model.attention import Attention
from olmo2_lit.model.config import ModelConfig
from olmo2_lit.model.feed_forward import FeedForward
from olmo2_lit.model.flops import linear_flops
from olmo2_lit.model.kv_cache import LayerKV
from olmo2_lit.model.registry import BLOCKS, MLPS, NORMS
from olmo2_lit.model.rope import RotaryEmbedding


class Block(nn.Module):
    """Base of every block: an attention and a feed-forward sublayer, each with a norm.

    Subclasses choose where the norms go by overriding ``forward``. The strategy wraps, compiles and
    checkpoints at this class (FSDP wrap policy, activation checkpointing).

    A block describes itself through :meth:`flops_per_token` (the MFU count) and
    :meth:`output_projections` (for scaled inits). The defaults ask the block's ``Attention`` and
    ``FeedForward`` children and count any other ``nn.Linear`` as a plain once-per-token matmul; a
    block with other matmuls, or other linears that write to the residual stream, overrides them.
    """

    def __init__(self, *, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        norm = NORMS.get(config.norm)
        self.attention = Attention(config=config, clip_qkv=config.clip_qkv)
        self.attention_norm = norm(config.d_model, eps=config.norm_eps)
        self.feed_forward = MLPS.get(config.mlp)(config=config)
        self.feed_forward_norm = norm(config.d_model, eps=config.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: RotaryEmbedding,
        doc_lens: Optional[torch.Tensor],
        cache: Optional[LayerKV] = None,
    ) -> torch.Tensor:
        """(B, T, d_model) -> (B, T, d_model).

        A subclass passes ``cache`` on to ``self.attention`` to support KV-cache generation. A block
        whose ``forward`` has no ``cache`` parameter still works everywhere: generation then
        recomputes the whole prefix at each token (``Transformer.supports_kv_cache`` is False).
        """
        raise NotImplementedError

    def flops_per_token(self, seq_len: int) -> int:
        """Forward matmul FLOPs for one token in a sequence of ``seq_len`` (2 per multiply-add).

        Sums ``Attention.flops_per_token(seq_len)`` and ``FeedForward.flops_per_token()`` of the
        children, plus ``2 * in * out`` for every ``nn.Linear`` in any other child.
        """
        total = 0
        for child in self.children():
            if isinstance(child, Attention):
                total += child.flops_per_token(seq_len)
            elif isinstance(child, FeedForward):
                total += child.flops_per_token()
            else:
                total += linear_flops(child)
        return total

    def output_projections(self) -> list[nn.Linear]:
        """The linears that write to the residual stream: those its ``Attention`` and
        ``FeedForward`` children report. Scaled inits give them ``1/sqrt(2 * fan_in * (layer + 1))``."""
        out: list[nn.Linear] = []
        for child in self.children():
            if isinstance(child, (Attention, FeedForward)):
                out += child.output_projections()
        return out


BLOCKS.set_base(Block)


@BLOCKS.register("reordered_norm")
class ReorderedNormBlock(Block):
    """The OLMo 2 block: like PreNormBlock, but each norm is applied to the sublayer *output*,
    inside the residual branch; the residual stream itself is never normalized.

    ::

        x ──┬──────────────────────────(+)──┬─────────────────────────────(+)──► out
            └─► attn ─► attention_norm ─┘   └─► mlp ─► feed_forward_norm ─┘

    OLMo 2 paper §3 ("reordered norm"); OLMo-core ``ReorderedNormTransformerBlock``; OLMO2.md §1.1.
    """

    def forward(self, x, rope, doc_lens, cache=None):
        h = x + self.attention_norm(self.attention(x, rope, doc_lens, cache))  # (B, T, d_model)
        return h + self.feed_forward_norm(self.feed_forward(h))


@BLOCKS.register("pre_norm")
class PreNormBlock(Block):
    """The Llama block: each norm is applied to the sublayer *input*.

    ::

        x ──┬───────────────────────────(+)──┬──────────────────────────────(+)──► out
            └─► attention_norm ─► attn ─┘    └─► feed_forward_norm ─► mlp ─┘
    """

    def forward(self, x, rope, doc_lens, cache=None):
        h = x + self.attention(self.attention_norm(x), rope, doc_lens, cache)  # (B, T, d_model)
        return h + self.feed_forward(self.feed_forward_norm(h))


@BLOCKS.register("olmo0424")
class OLMo0424Block(PreNormBlock):
    """The OLMo-0424 block, the ablation baseline of OLMo 2 (OLMO2.md §3.2): PreNormBlock with
    non-parametric LayerNorm on both sublayers (whatever ``config.norm`` says) and q/k/v clipped at
    ``config.clip_qkv`` (8.0 if unset)."""

    def __init__(self, *, config: ModelConfig, layer_idx: int) -> None:
        super().__init__(config=config.replace(clip_qkv=config.clip_qkv or 8.0), layer_idx=layer_idx)
        ln = NORMS.get("layer_norm_no_affine")
        self.attention_norm = ln(config.d_model, eps=config.norm_eps)
        self.feed_forward_norm = ln(config.d_model, eps=config.norm_eps)
