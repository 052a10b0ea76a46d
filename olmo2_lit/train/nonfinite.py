"""Where a non-finite value first appears: module outputs in forward order, gradients in model order."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def nonfinite_grads(model: nn.Module, limit: int = 10) -> tuple[list[str], int]:
    """Names of the first ``limit`` parameters, in the order backward reaches them (reverse model order:
    LM head, final norm, last block ... embeddings), whose gradient on this rank holds a NaN or inf, and
    how many there are in all. A NaN spreads downward, so the first name is nearest its source."""
    named = reversed(list(model.named_parameters()))
    names = [n for n, p in named if p.grad is not None and not _local(p.grad).isfinite().all()]
    return names[:limit], len(names)


@torch.no_grad()
def nonfinite_activations(
    model: nn.Module, input_ids: torch.Tensor, doc_lens: Optional[torch.Tensor] = None, limit: int = 10
) -> list[str]:
    """Re-run ``model`` on one micro-batch and name the first ``limit`` submodules, in the order they ran,
    whose output holds a NaN or inf. The weights are those of the step that failed (it was not applied)."""
    found: list[str] = []

    def hook(name: str):
        def check(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor) and out.is_floating_point() and not _local(out).isfinite().all():
                if len(found) < limit and name not in found:
                    found.append(name)

        return check

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        model(input_ids, doc_lens)
    finally:
        for h in handles:
            h.remove()
    return found
