"""The OLMo 2 language-modelling loss: cross-entropy plus z-loss, in fp32, and its normalization over
one optimizer step's global batch as OLMo-core does it."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.model.fused_loss import IGNORE_INDEX


def lm_loss_sums(
    logits: torch.Tensor, labels: torch.Tensor, *, z_loss_multiplier: Optional[float] = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and z-loss over the positions whose label is not -100.

    The z-loss is ``z_loss_multiplier * logsumexp(logits)^2`` (OLMO2.md §2.2; OLMo-core
    ``cross_entropy_loss`` with ``z_loss_multiplier=1e-5``). Logits are upcast to fp32 first.

    Args:
        logits: (B, T, V) in any float dtype.
        labels: (B, T) next-token targets, already shifted; -100 marks ignored positions.
        z_loss_multiplier: weight of the z-loss; None or 0 disables it (it is then returned as 0).

    Returns:
        ``(ce_sum, z_sum)``, fp32 scalars.
    """
    logits = logits.float().flatten(0, -2)  # (B*T, V)
    labels = labels.flatten()
    ce = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    if not z_loss_multiplier:
        return ce, torch.zeros_like(ce)
    lse = torch.logsumexp(logits, dim=-1)
    z = z_loss_multiplier * (lse.pow(2) * (labels != IGNORE_INDEX)).sum()
    return ce, z


def lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, z_loss_multiplier: Optional[float] = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and z-loss over the positions whose label is not -100.

    Same arguments as :func:`lm_loss_sums`. With every label ignored both are 0 (not NaN), so a fully
    filtered batch contributes no gradient.
    """
    ce, z = lm_loss_sums(logits, labels, z_loss_multiplier=z_loss_multiplier)
    n_valid = (labels != IGNORE_INDEX).sum().clamp(min=1)
    return ce / n_valid, z / n_valid


def target_tokens(plan: BatchPlan) -> int:
    """Target tokens of a global batch with no masked instance: ``global_batch * (T - 1)``.

    Each instance of T tokens predicts T - 1 of them (the last label is -100). This is the divisor a
    step's summed loss is scaled by while its micro-batches run; see :class:`StepSums` for the exact one.
    """
    return plan.global_batch * (plan.sequence_length - 1)


class StepSums:
    """This rank's summed CE, z-loss, target count and masked-instance count over one optimizer step.

    OLMo-core divides the global batch's summed loss by its target-token count, where each instance
    masked by the instance filter counts as T tokens of zero loss (OLMo-core
    ``TransformerTrainModule.train_batch``). :meth:`reduce` sums over ranks once per step with one
    collective and no host sync.
    """

    def __init__(self) -> None:
        self._sums: Optional[torch.Tensor] = None
        self._has_mask = False

    def add(
        self,
        ce_sum: torch.Tensor,
        z_sum: torch.Tensor,
        labels: torch.Tensor,
        instance_mask: Optional[torch.Tensor],
    ) -> None:
        """Add one micro-batch (``instance_mask``: True where the instance is kept, or None)."""
        masked = torch.zeros_like(ce_sum) if instance_mask is None else (~instance_mask).sum()
        targets = (labels != IGNORE_INDEX).sum()
        row = torch.stack(
            [
                ce_sum.detach(),
                z_sum.detach(),
                targets.to(ce_sum.dtype),
                masked.to(ce_sum.dtype) * labels.shape[1],
            ]
        )
        self._sums = row if self._sums is None else self._sums + row
        self._has_mask = self._has_mask or instance_mask is not None

    def reduce(self, strategy) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """``(ce, z, divisor, has_mask)`` of the whole global batch, and start the next step.

        ``ce`` and ``z`` are already divided by ``divisor`` (targets + T per masked instance).
        """
        sums = strategy.reduce(self._sums, reduce_op="sum")
        ce, z, targets, masked_tokens = sums.unbind()
        divisor = (targets + masked_tokens).clamp(min=1)
        has_mask, self._sums, self._has_mask = self._has_mask, None, False
        return ce / divisor, z / divisor, divisor, has_mask
