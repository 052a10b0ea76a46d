"""Per-layer statistics for stability diagnostics: norms by block, the Adam update size, attention logits.

Norms of FSDP2 DTensors are reduced over the mesh, so every rank gets the global value (as in
``grad_norm.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def layer_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The transformer's parameters by layer: ``embeddings``, ``block_00``..., ``final_norm``, ``lm_head``."""
    groups = {"embeddings": list(model.embeddings.parameters())}
    width = len(str(len(model.blocks) - 1))
    for i, block in enumerate(model.blocks):
        groups[f"block_{i:0{width}d}"] = list(block.parameters())
    groups["final_norm"] = list(model.norm.parameters())
    groups["lm_head"] = list(model.lm_head.parameters())
    return groups


def total_norm(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all ``tensors`` as a plain fp32 scalar, global under FSDP2; 0 for none."""
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return torch.zeros(())
    norm = torch.nn.utils.get_total_norm([t.detach().float() for t in tensors], norm_type=2.0)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def adam_update(param: nn.Parameter, state: dict, *, lr: float, betas, eps: float) -> torch.Tensor | None:
    """The Adam step ``lr * m_hat / (sqrt(v_hat) + eps)`` from the moments after an update (weight decay
    left out); None for a parameter with no Adam state yet."""
    if "exp_avg" not in state or "exp_avg_sq" not in state:
        return None
    step = max(float(state.get("step", 1)), 1.0)
    beta1, beta2 = betas
    m_hat = state["exp_avg"] / (1 - beta1**step)
    v_hat = state["exp_avg_sq"] / (1 - beta2**step)
    return lr * m_hat / (v_hat.sqrt() + eps)


@torch.no_grad()
def max_attention_logit(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Largest causal pre-softmax logit ``q.k / sqrt(head_dim)`` of the batch's first sequence.

    q: (B, H, T, D), k: (B, Hkv, T, D) as the attention backends receive them (after QK-norm and RoPE).
    Computed head by head, so memory stays at one (T, T) matrix. Document masks are not applied: the
    value bounds the real one from above.
    """
    n_rep = q.shape[1] // k.shape[1]
    T = q.shape[-2]
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    best = torch.full((), -math.inf, device=q.device)
    for h in range(q.shape[1]):
        scores = (q[0, h].float() @ k[0, h // n_rep].float().T) / math.sqrt(q.shape[-1])  # (T, T)
        best = torch.maximum(best, scores.masked_fill(~causal, -math.inf).max())
    return best
