"""Independent float64 references for the model tests: written from the formulas in OLMO2.md
§1.2-1.3 and the HF "rotate half" RoPE layout, sharing no code with ``olmo2_lit.model``."""

from __future__ import annotations

import math

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``x_i / sqrt(mean(x^2) + eps) * w_i`` per row, summed with ``math.fsum`` in float64."""
    rows = x.double().reshape(-1, x.shape[-1]).tolist()
    w = weight.double().tolist()
    out = []
    for row in rows:
        scale = 1.0 / math.sqrt(math.fsum(v * v for v in row) / len(row) + eps)
        out.append([v * scale * wi for v, wi in zip(row, w)])
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` per row (population variance), in float64."""
    rows = x.double().reshape(-1, x.shape[-1]).tolist()
    out = []
    for row in rows:
        mean = math.fsum(row) / len(row)
        var = math.fsum((v - mean) ** 2 for v in row) / len(row)
        out.append([(v - mean) / math.sqrt(var + eps) for v in row])
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


def rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate (..., T, D) in float64: pair (i, i + D/2) at position p turns by ``p * theta^(-2i/D)``."""
    x = x.double()
    T, D = x.shape[-2:]
    half = D // 2
    positions = torch.arange(T, dtype=torch.float64)
    out = torch.empty_like(x)
    for i in range(half):
        angle = positions * theta ** (-2 * i / D)
        c, s = angle.cos(), angle.sin()
        a, b = x[..., i], x[..., i + half]
        out[..., i] = a * c - b * s
        out[..., i + half] = b * c + a * s
    return out


def causal_attention(
    x: torch.Tensor,
    *,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_out: torch.Tensor,
    n_heads: int,
    n_kv_heads: int,
    theta: float,
    clip: float | None,
) -> torch.Tensor:
    """Attention without QK-norm in float64: project, clamp q/k/v to +-clip, RoPE, causal softmax
    attention per head (kv head ``h // (n_heads / n_kv_heads)``), output projection."""
    x = x.double()
    B, T, _ = x.shape
    q, k, v = (x @ w.double().T for w in (w_q, w_k, w_v))
    if clip is not None:
        q, k, v = (t.clamp(-clip, clip) for t in (q, k, v))
    hd = q.shape[-1] // n_heads
    q = rope(q.view(B, T, n_heads, hd).transpose(1, 2), theta)
    k = rope(k.view(B, T, n_kv_heads, hd).transpose(1, 2), theta)
    v = v.view(B, T, n_kv_heads, hd).transpose(1, 2)
    heads = []
    for h in range(n_heads):
        g = h // (n_heads // n_kv_heads)
        scores = q[:, h] @ k[:, g].transpose(-1, -2) / math.sqrt(hd)  # (B, T, T)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        heads.append(scores.softmax(-1) @ v[:, g])
    return torch.cat(heads, dim=-1) @ w_out.double().T


def truncated_normal_std(std: float, cutoff: float) -> float:
    """Standard deviation of N(0, std) truncated at +-cutoff*std: ``std * sqrt(1 - 2a phi(a) / Z)``."""
    phi = math.exp(-(cutoff**2) / 2) / math.sqrt(2 * math.pi)
    z = math.erf(cutoff / math.sqrt(2))
    return std * math.sqrt(1 - 2 * cutoff * phi / z)
