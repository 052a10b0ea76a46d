"""The OLMo 2 language-modelling loss: cross-entropy plus z-loss, in fp32."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, z_loss_multiplier: Optional[float] = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and z-loss over the positions whose label is not -100.

    The z-loss is ``z_loss_multiplier * logsumexp(logits)^2`` averaged over the same positions
    (OLMO2.md §2.2; OLMo-core ``cross_entropy_loss`` with ``z_loss_multiplier=1e-5``). Logits are
    upcast to fp32 first.

    Args:
        logits: (B, T, V) in any float dtype.
        labels: (B, T) next-token targets, already shifted; -100 marks ignored positions.
        z_loss_multiplier: weight of the z-loss; None or 0 disables it (it is then returned as 0).

    Returns:
        ``(ce_loss, z_loss)``, both scalars. With every label ignored both are 0 (not NaN), so a
        fully filtered batch contributes no gradient.
    """
    logits = logits.float().flatten(0, -2)  # (B*T, V)
    labels = labels.flatten()
    valid = labels != -100
    n_valid = valid.sum().clamp(min=1)
    ce = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum") / n_valid
    if not z_loss_multiplier:
        return ce, torch.zeros_like(ce)
    lse = torch.logsumexp(logits, dim=-1)
    z = z_loss_multiplier * (lse.pow(2) * valid).sum() / n_valid
    return ce, z
