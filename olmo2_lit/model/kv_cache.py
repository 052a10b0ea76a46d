"""Key/value cache for incremental decoding: prefill once, then one token per step.

The cache is preallocated for ``max_length`` slots per row. All rows share the slot index (a batch of
prompts of different lengths is *left-padded*: padding slots are marked invalid and never attended
to), while each row has its own RoPE position, counted over its valid tokens only, as transformers
does (``position_ids = attention_mask.cumsum(-1) - 1``). Keys and values are stored with the model's
``n_kv_heads`` heads, so a GQA model caches ``n_heads / n_kv_heads`` times less than MHA.

Protocol, driven by :meth:`Transformer.forward` when it is given a cache:

1. ``cache.begin(valid)`` with ``valid`` (B, T) bool for the T new tokens (False = left padding);
2. each block's attention calls ``cache.layer(i).update(k, v)`` and reads ``positions`` / ``mask``;
3. ``cache.commit()`` advances the filled length by T.
"""

from __future__ import annotations

from typing import Optional

import torch


class KVCache:
    """Preallocated per-layer keys and values for a batch being decoded.

    Args:
        n_layers: number of blocks.
        batch_size: rows decoded together.
        max_length: slots per row (longest prompt plus new tokens); at most the model's context.
        n_kv_heads: key/value heads (``config.kv_heads``).
        head_dim: width of one head.
        dtype: dtype of the cached keys and values (the model's).
        device: where the cache lives (the model's device).
    """

    def __init__(
        self,
        *,
        n_layers: int,
        batch_size: int,
        max_length: int,
        n_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (batch_size, n_kv_heads, max_length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.valid = torch.zeros(batch_size, max_length, dtype=torch.bool, device=device)
        self.max_length = max_length
        self.length = 0  # slots filled
        self._n_valid = torch.zeros(batch_size, dtype=torch.long, device=device)  # real tokens per row
        self._new = 0  # tokens in the step being run
        self.positions: Optional[torch.Tensor] = None  # (B, T) RoPE positions of the new tokens
        self.mask: Optional[torch.Tensor] = None  # (B, 1, T, length + T) True = may attend
        self._layers = [LayerKV(self, i) for i in range(n_layers)]

    @classmethod
    def for_model(cls, model: torch.nn.Module, *, batch_size: int, max_length: int) -> KVCache:
        """A cache shaped for ``model`` (a :class:`~olmo2_lit.model.Transformer`)."""
        cfg = model.config
        weight = model.embeddings.weight
        return cls(
            n_layers=cfg.n_layers,
            batch_size=batch_size,
            max_length=max_length,
            n_kv_heads=cfg.kv_heads,
            head_dim=cfg.head_dim,
            dtype=weight.dtype,
            device=weight.device,
        )

    def layer(self, idx: int) -> LayerKV:
        """The view of layer ``idx`` that its attention reads and writes."""
        return self._layers[idx]

    def begin(self, valid: torch.Tensor) -> None:
        """Reserve slots for T new tokens; ``valid`` (B, T) is False on left padding.

        Raises:
            ValueError: the new tokens do not fit in the remaining slots.
        """
        T = valid.shape[1]
        start, end = self.length, self.length + T
        if end > self.max_length:
            raise ValueError(f"KV cache full: {start} + {T} new tokens > max_length {self.max_length}")
        self.valid[:, start:end] = valid
        # RoPE position = number of real tokens before this one in the row (padding keeps 0).
        counts = self._n_valid[:, None] + valid.long().cumsum(-1)  # (B, T)
        self.positions = (counts - 1).clamp_min(0)
        self._n_valid = counts[:, -1]
        # Query at slot start+t sees keys at valid slots <= start+t, and always itself, so a padding
        # query has one finite key instead of a softmax over nothing (NaN that would reach real rows).
        slots = torch.arange(end, device=valid.device)
        q_slots = torch.arange(start, end, device=valid.device)
        causal = slots[None, :] <= q_slots[:, None]  # (T, end)
        own = slots[None, :] == q_slots[:, None]
        self.mask = ((self.valid[:, None, :end] & causal) | own)[:, None]  # (B, 1, T, end)
        self._new = T

    def commit(self) -> None:
        """Mark the slots of the step just run as filled."""
        self.length += self._new
        self._new = 0


class LayerKV:
    """One layer's slice of a :class:`KVCache`."""

    def __init__(self, cache: KVCache, idx: int) -> None:
        self.cache, self.idx = cache, idx

    @property
    def positions(self) -> torch.Tensor:
        return self.cache.positions

    @property
    def mask(self) -> torch.Tensor:
        return self.cache.mask

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, Hkv, T, D) of the new tokens; return all keys and values so far."""
        c = self.cache
        start, end = c.length, c.length + k.shape[-2]
        keys, values = c.keys[self.idx], c.values[self.idx]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]
