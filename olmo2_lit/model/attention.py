"""Causal self-attention with OLMo 2's full-width QK-norm, and the pluggable attention backends.

A backend is a callable module ``backend(q, k, v, doc_lens) -> out`` with q of shape
(B, n_heads, T, head_dim) and k, v of shape (B, n_kv_heads, T, head_dim). It applies causal masking,
and, when ``doc_lens`` (B, max_docs; zero-padded; each row sums to T) is given, also stops attention
at document boundaries.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from olmo2_lit.compat import tensor_version
from olmo2_lit.model.config import ModelConfig
from olmo2_lit.model.flops import linear_flops
from olmo2_lit.model.kv_cache import LayerKV
from olmo2_lit.model.registry import ATTENTION, NORMS
from olmo2_lit.model.rope import RotaryEmbedding


class AttentionBackend(nn.Module):
    """Base class of the attention kernels; subclasses implement ``forward(q, k, v, doc_lens)``."""

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, doc_lens: Optional[torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError


ATTENTION.set_base(AttentionBackend)


def document_ids(doc_lens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(B, max_docs) document lengths -> (B, T) index of the document each position belongs to."""
    ends = doc_lens.to(torch.int64).cumsum(-1)  # (B, max_docs)
    positions = torch.arange(seq_len, device=doc_lens.device).expand(doc_lens.shape[0], seq_len)
    return torch.searchsorted(ends, positions.contiguous(), right=True)


def document_causal_mask(doc_lens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Boolean (B, 1, T, T) mask, True where query t may attend key s: s <= t, same document."""
    doc = document_ids(doc_lens, seq_len)
    same_doc = doc[:, :, None] == doc[:, None, :]
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=doc_lens.device).tril()
    return (same_doc & causal)[:, None]


@ATTENTION.register("sdpa")
class SDPABackend(AttentionBackend):
    """``torch.nn.functional.scaled_dot_product_attention``; a boolean mask for document masking."""

    def forward(self, q, k, v, doc_lens):
        gqa = q.shape[1] != k.shape[1]
        if doc_lens is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        mask = document_causal_mask(doc_lens, q.shape[-2])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


@ATTENTION.register("eager")
class EagerBackend(AttentionBackend):
    """Reference implementation: explicit scores and an fp32 softmax. Slow; for checking others."""

    def forward(self, q, k, v, doc_lens):
        n_rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
        scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(q.shape[-1])  # (B, H, T, T)
        T = q.shape[-2]
        if doc_lens is None:
            mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        else:
            mask = document_causal_mask(doc_lens, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        return scores.softmax(dim=-1).to(v.dtype) @ v


@ATTENTION.register("flex")
class FlexBackend(AttentionBackend):
    """FlexAttention with a block mask built from the document lengths: no dense (T, T) mask.

    The mask is ``causal & same document``, turned by ``create_block_mask`` into a sparse block list
    (128 x 128 tiles), so tiles across document boundaries are skipped, not computed and masked. The mask
    is built once per forward and shared by the layers (they receive the same ``doc_lens`` tensor). On
    CUDA the kernel is ``torch.compile(flex_attention)`` (compiled on first use). On CPU torch runs it
    forward only (no backward, and unfused: it materializes the scores): evaluation and checking; train
    with ``sdpa`` there.
    """

    _last: tuple = (None, None, None)  # (doc_lens, key, block mask) of the latest forward, for every layer

    def forward(self, q, k, v, doc_lens):
        from torch.nn.attention.flex_attention import flex_attention

        if q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad:
            raise RuntimeError(
                "attention backend 'flex': torch's FlexAttention has no backward on CPU; "
                "train with attention: sdpa on CPU (flex is for CUDA, or for evaluation here)"
            )
        gqa = q.shape[1] != k.shape[1]
        kernel = _compiled_flex() if q.device.type == "cuda" else flex_attention
        return kernel(q, k, v, block_mask=self._block_mask(doc_lens, q), enable_gqa=gqa)

    @classmethod
    def _block_mask(cls, doc_lens: Optional[torch.Tensor], q: torch.Tensor):
        from torch.nn.attention.flex_attention import create_block_mask

        B, T = q.shape[0], q.shape[-2]
        # Under torch.compile (per block) the mask is built inside each block's graph: the cache's
        # identity and version checks would be data-dependent guards, a graph break.
        compiling = torch.compiler.is_compiling()
        key = None if compiling else (None if doc_lens is None else tensor_version(doc_lens), B, T, q.device)
        if not compiling and cls._last[0] is doc_lens and cls._last[1] == key:  # the same tensor, unchanged
            return cls._last[2]
        if doc_lens is None:

            def mask_mod(b, h, q_idx, kv_idx):
                return q_idx >= kv_idx

            mask = create_block_mask(mask_mod, None, None, T, T, device=q.device)
        else:
            doc = document_ids(doc_lens, T)

            def mask_mod(b, h, q_idx, kv_idx):
                return (q_idx >= kv_idx) & (doc[b, q_idx] == doc[b, kv_idx])

            mask = create_block_mask(mask_mod, B, None, T, T, device=q.device)
        if not compiling:
            cls._last = (doc_lens, key, mask)
        return mask


_FLEX_COMPILED = None


def _compiled_flex():
    global _FLEX_COMPILED
    if _FLEX_COMPILED is None:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX_COMPILED = torch.compile(flex_attention, dynamic=False)
    return _FLEX_COMPILED


@ATTENTION.register("xformers")
class XFormersBackend(AttentionBackend):
    """xformers ``memory_efficient_attention`` (CUDA only; ``pip install olmo2_lit[xformers]``).

    Document masking uses ``BlockDiagonalCausalMask.from_seqlens`` over the flattened batch, so no
    dense mask is ever built.
    """

    def forward(self, q, k, v, doc_lens):
        try:
            import xformers.ops as xops
            from xformers.ops import fmha
        except ImportError as err:
            raise RuntimeError(
                "attention backend 'xformers': the xformers package is not installed; "
                "`pip install olmo2_lit[xformers]` on a CUDA machine, or use attention: sdpa"
            ) from err
        if q.device.type != "cuda":
            raise RuntimeError(
                f"attention backend 'xformers' runs on CUDA only, got a tensor on {q.device}; "
                "use attention: sdpa on this device"
            )
        B, H, T, D = q.shape
        Hkv = k.shape[1]
        # xformers layout: (B, T, groups, heads per group, D) for GQA.
        q5 = q.transpose(1, 2).reshape(B, T, Hkv, H // Hkv, D)
        k5 = k.transpose(1, 2)[:, :, :, None].expand(B, T, Hkv, H // Hkv, D)
        v5 = v.transpose(1, 2)[:, :, :, None].expand(B, T, Hkv, H // Hkv, D)
        if doc_lens is None:
            bias = fmha.attn_bias.LowerTriangularMask()
        else:
            seqlens = [int(n) for n in doc_lens.flatten().tolist() if n > 0]
            bias = fmha.attn_bias.BlockDiagonalCausalMask.from_seqlens(seqlens)
            q5, k5, v5 = (t.reshape(1, B * T, Hkv, H // Hkv, D) for t in (q5, k5, v5))
        out = xops.memory_efficient_attention(q5, k5, v5, attn_bias=bias)  # (b, t, Hkv, H/Hkv, D)
        return out.reshape(B, T, H, D).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with OLMo 2's QK-norm.

    Order (OLMO2.md §1.2): project q, k, v -> RMSNorm q and k over the *full* projected width ->
    split into heads -> RoPE -> attention -> output projection. With ``clip_qkv`` set (OLMo-0424),
    q, k and v are clamped right after projection.
    """

    def __init__(self, *, config: ModelConfig, clip_qkv: Optional[float] = None) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.kv_heads, config.head_dim
        self.clip_qkv = clip_qkv
        d_q, d_kv = config.n_heads * config.head_dim, config.kv_heads * config.head_dim
        self.w_q = nn.Linear(config.d_model, d_q, bias=False)
        self.w_k = nn.Linear(config.d_model, d_kv, bias=False)
        self.w_v = nn.Linear(config.d_model, d_kv, bias=False)
        self.w_out = nn.Linear(d_q, config.d_model, bias=False)
        norm = NORMS.get(config.norm)
        self.q_norm = norm(d_q, eps=config.norm_eps) if config.qk_norm else None
        self.k_norm = norm(d_kv, eps=config.norm_eps) if config.qk_norm else None
        self.backend = ATTENTION.get(config.attention)()

    def forward(
        self,
        x: torch.Tensor,
        rope: RotaryEmbedding,
        doc_lens: Optional[torch.Tensor],
        cache: Optional[LayerKV] = None,
    ) -> torch.Tensor:
        """(B, T, d_model) -> (B, T, d_model).

        Args:
            x: the (normalized) residual stream.
            rope: the model's rotary embedding.
            doc_lens: optional document lengths for document masking (training only).
            cache: this layer's view of a :class:`~olmo2_lit.model.kv_cache.KVCache` when decoding
                incrementally: x holds only the new tokens; their keys and values are appended to the
                cache and attention runs over everything cached, with the cache's padding mask (SDPA,
                whatever the configured backend, whose interface is causal-only).
        """
        B, T, _ = x.shape  # (B, T, d_model)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)
        if self.clip_qkv is not None:
            q, k, v = (t.clamp(-self.clip_qkv, self.clip_qkv) for t in (q, k, v))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if cache is None:
            q, k = rope(q, k)
            out = self.backend(q, k, v, doc_lens)  # (B, H, T, D)
        else:
            q, k = rope(q, k, positions=cache.positions)
            k, v = cache.update(k, v)  # (B, Hkv, S, D), S = slots so far
            gqa = self.n_heads != self.n_kv_heads
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.mask, enable_gqa=gqa)
        return self.w_out(out.transpose(1, 2).reshape(B, T, -1))

    def flops_per_token(self, seq_len: int) -> int:
        """Forward matmul FLOPs for one token in a sequence of ``seq_len``: 2 per multiply-add.

        The q, k, v and output projections (``2 * in * out`` each), plus the scores ``q k^T`` and
        the weighted values ``p v``: ``2 * 2 * n_heads * head_dim * seq_len``, with no discount for
        the causal mask (the convention of OLMo-core's OLMo 2 runs, OLMO2.md §5). A subclass with a
        different attention pattern (sliding window, linear attention) overrides this.
        """
        scores_and_values = 2 * 2 * self.n_heads * self.head_dim * seq_len
        return linear_flops(self.w_q, self.w_k, self.w_v, self.w_out) + scores_and_values

    def output_projections(self) -> list[nn.Linear]:
        """The linears that write back to the residual stream (scaled inits shrink them): ``w_out``."""
        return [self.w_out]
