"""Global gradient norm and clipping that agree on every rank under DDP and FSDP2."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Optional

import torch
from torch.distributed.tensor.experimental import implicit_replication

from olmo2_lit import compat


def global_grad_norm(
    params: Iterable[torch.nn.Parameter],
    *,
    sum_over_ranks: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """L2 norm over all gradients, as one scalar tensor identical on every rank.

    DDP gradients are already all-reduced, so the local norm is the global one. FSDP2 gradients are
    DTensor shards: ``get_total_norm`` reduces them and ``full_tensor()`` makes the result a plain
    tensor on every rank (LIGHTNING.md §4: Lightning's ``grad_norm`` crashes there). FSDP (v1) gradients
    are plain tensors holding this rank's shard: pass ``sum_over_ranks`` (an all-reduce sum) and the
    squares are summed over ranks (``olmo2_lit.train.strategies.StrategyAdapter`` decides which).
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0) if grads else torch.zeros(())
    if hasattr(norm, "full_tensor"):
        return norm.full_tensor()
    if sum_over_ranks is not None:
        return sum_over_ranks(norm.float() ** 2).sqrt()
    return norm


def clip_grads_(params: Iterable[torch.nn.Parameter], max_norm: float, total_norm: torch.Tensor) -> None:
    """Scale gradients so their global norm is at most ``max_norm`` (no host sync)."""
    # clip_grads_with_norm_ takes the *parameters* (it reads .grad itself); handed the gradients, it
    # finds no .grad on them and silently does nothing.
    with_grads = [p for p in params if p.grad is not None]
    if with_grads:
        torch.nn.utils.clip_grads_with_norm_(with_grads, max_norm, total_norm)


def rescale_grads_(params: Iterable[torch.nn.Parameter], factor: torch.Tensor) -> None:
    """Multiply every gradient by ``factor`` (a 0-dim tensor; no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        # FSDP2 gradients are DTensor shards; a plain 0-dim factor is a replicated scalar to them.
        with implicit_replication():
            compat.foreach.mul_(grads, factor.to(grads[0].dtype))
