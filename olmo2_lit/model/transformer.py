"""The decoder-only transformer: embeddings -> blocks -> final norm -> output projection."""

from __future__ import annotations

import inspect
from typing import Optional

import torch
from torch import nn

from olmo2_lit.model.config import ModelConfig
from olmo2_lit.model.fused_loss import fused_lm_loss_sums
from olmo2_lit.model.kv_cache import KVCache
from olmo2_lit.model.registry import BLOCKS, INITS, NORMS
from olmo2_lit.model.rope import RotaryEmbedding


class Transformer(nn.Module):
    """An OLMo-2-style language model built from a :class:`ModelConfig` and the registries.

    Plain torch: it knows nothing of Lightning, distribution or data files. Build it under
    ``torch.device("meta")`` to inspect a 7B-32B model without memory.

    Args:
        config: sizes and component names.
        init_weights: run the config's init scheme now (skip it when weights will be loaded).
    """

    def __init__(self, config: ModelConfig, *, init_weights: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.padded_vocab_size, config.d_model)
        block_cls = BLOCKS.get(config.block)
        self.blocks = nn.ModuleList(block_cls(config=config, layer_idx=i) for i in range(config.n_layers))
        self.norm = NORMS.get(config.norm)(config.d_model, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        self.rope = RotaryEmbedding(
            head_dim=config.head_dim, theta=config.rope_theta, max_sequence_length=config.max_sequence_length
        )
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """(Re)initialize every weight with the config's init scheme."""
        if self.embeddings.weight.is_meta:
            return
        INITS.get(self.config.init)()(self)

    @property
    def supports_kv_cache(self) -> bool:
        """Whether the block class accepts a ``cache`` argument (all built-in blocks do)."""
        return "cache" in inspect.signature(BLOCKS.get(self.config.block).forward).parameters

    def forward(
        self,
        input_ids: torch.Tensor,
        doc_lens: Optional[torch.Tensor] = None,
        *,
        labels: Optional[torch.Tensor] = None,
        z_loss_multiplier: float = 0.0,
        cache: Optional[KVCache] = None,
        valid: Optional[torch.Tensor] = None,
        last_only: bool = False,
    ):
        """Token ids (B, T) -> logits (B, T, padded_vocab_size), or with ``labels`` the summed loss.

        Args:
            input_ids: token ids, int64.
            doc_lens: optional (B, max_docs) document lengths (zero-padded, rows sum to T); attention
                then never crosses a document boundary.
            labels: (B, T) next-token targets (-100 ignored). When given, the output projection is
                fused with the loss (:mod:`olmo2_lit.model.fused_loss`) and ``(ce_sum, z_sum)`` is
                returned instead of the logits, which are never materialized whole.
            z_loss_multiplier: weight of the z-loss, with ``labels``.
            cache: a :class:`KVCache` for incremental decoding: ``input_ids`` are the tokens that
                follow those already cached (the whole prompt at prefill, one token per step after).
            valid: with ``cache``, optional (B, T) bool, False on left padding (default all True).
            last_only: return the logits of the last position only, (B, 1, padded_vocab_size).
        """
        x = self.embeddings(input_ids)  # (B, T, d_model)
        if cache is None:
            for block in self.blocks:
                x = block(x, self.rope, doc_lens)
            x = self.norm(x[:, -1:] if last_only else x)
            if labels is not None:
                return fused_lm_loss_sums(x, self.lm_head.weight, labels, z_loss_multiplier=z_loss_multiplier)
            return self.lm_head(x)  # (B, T, padded_vocab)
        if doc_lens is not None or labels is not None:
            raise ValueError(
                "doc_lens and labels cannot be combined with cache: decoding runs one document per row"
            )
        if not self.supports_kv_cache:
            raise ValueError(
                f"block {self.config.block} has no `cache` argument in forward; "
                "generate without a cache (use_cache=False) or pass `cache` on to self.attention"
            )
        self.rope.ensure(cache.max_length, input_ids.device)
        cache.begin(valid if valid is not None else torch.ones_like(input_ids, dtype=torch.bool))
        for i, block in enumerate(self.blocks):
            x = block(x, self.rope, None, cache=cache.layer(i))
        cache.commit()
        return self.lm_head(self.norm(x[:, -1:] if last_only else x))

    def flops_per_token(self, seq_len: int, *, training: bool = True) -> int:
        """Matmul FLOPs to process one token of a ``seq_len`` sequence (OLMo-core's count, OLMO2.md §5).

        The sum of each block's :meth:`Block.flops_per_token` and the output projection
        (``2 * d_model * padded_vocab``); the input embedding is a lookup and norms are not matmuls.
        No padding or recompute is counted. Training (forward + backward) is 3x the forward pass.
        """
        forward = sum(block.flops_per_token(seq_len) for block in self.blocks)
        forward += 2 * self.lm_head.in_features * self.lm_head.out_features
        return 3 * forward if training else forward

    def num_params(self, *, include_embeddings: bool = True) -> int:
        """Parameter count; ``include_embeddings=False`` leaves out the input embedding and the
        output projection, as the "non-embedding" column of OLMO2.md §1.5 does."""
        n = sum(p.numel() for p in self.parameters())
        return n if include_embeddings else n - self.embeddings.weight.numel() - self.lm_head.weight.numel()
