"""Rotary position embeddings, computed and applied in fp32 (OLMo-core ``rope_full_precision``).

Uses the "rotate half" layout of HF Llama/Olmo2 (first half of each head pairs with the second),
so imported HF weights need no permutation.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Holds the cos/sin tables; ``rope(q, k)`` rotates both.

    Args:
        head_dim: width of one head (even).
        theta: base frequency (500,000 for OLMo 2, OLMO2.md §1.4).
        max_sequence_length: initial table length; it grows when a longer input arrives.
    """

    def __init__(self, *, head_dim: int, theta: float, max_sequence_length: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self._cache_len = 0
        self.register_buffer("cos", torch.empty(0), persistent=False)
        self.register_buffer("sin", torch.empty(0), persistent=False)
        self._max_sequence_length = max_sequence_length

    def _build(self, length: int, device: torch.device) -> None:
        # Same arithmetic as HF's default RoPE init, so fp32 logits agree to the last bit or two.
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float() / self.head_dim
        inv_freq = 1.0 / (self.theta**exponent)
        positions = torch.arange(length, device=device, dtype=torch.int64).float()
        freqs = torch.outer(positions, inv_freq)  # (T, head_dim / 2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (T, head_dim)
        self.cos, self.sin = emb.cos(), emb.sin()
        self._cache_len = length

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, positions: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate q (B, H, T, D) and k (B, Hkv, T, D); returns tensors of the input dtype.

        Args:
            q: queries.
            k: keys.
            positions: optional (B, T) position of each token (incremental decoding, left padding);
                None means 0..T-1 for every row. Positions must be below the table length (see
                :meth:`ensure`).
        """
        if positions is None:
            self.ensure(q.shape[-2], q.device)
            cos, sin = self.cos[: q.shape[-2]], self.sin[: q.shape[-2]]
        else:
            cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (B, 1, T, D)
        with torch.autocast(device_type=q.device.type, enabled=False):
            return _rotate(q, cos, sin), _rotate(k, cos, sin)

    def ensure(self, length: int, device: torch.device) -> None:
        """Make sure the tables cover positions ``0 .. length - 1`` on ``device``."""
        if self._cache_len < length or self.cos.device != device or self.cos.is_meta:
            self._build(max(length, self._max_sequence_length), device)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)
