"""One frozen record per optimizer step: what the step trained on, what it measured and what became of it.

``OLMo2LitModule`` builds it once per optimizer step, after the update and the LR scheduler's step, and
hands it to every :class:`~olmo2_lit.callbacks.step_callback.StepCallback` (observers first, then
interventions). It is the one place a callback learns that a step finished and what it produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

SkipReason = Literal["nonfinite", "spike"]
"""Why an update was not applied: a non-finite loss or grad norm dropped by the non-finite guard, or
SkipStepAdamW's spike rule (loss or grad norm above its rolling mean + sigma x std)."""


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step, the same on every rank except ``instance_ids``.

    Attributes:
        step: the step's index, counted from 0 as it is logged (``trainer.global_step`` before it).
        tokens_seen: training tokens consumed by all ranks once this step's batch is in (the data position).
        loss: CE over the whole global batch (all micro-batches and ranks), OLMo-core's normalization.
        z_loss: the z-loss over the same tokens, weighted by ``z_loss_multiplier``.
        grad_norm: global L2 norm of the gradients after accumulation, before clipping (under DeepSpeed
            from the engine's own partitions).
        lr: the LR the step ran at (the first param group's).
        finite: whether ``loss`` and ``grad_norm`` were both finite.
        skipped: whether the update was left out (weights and optimizer state unchanged).
        skip_reason: why, when ``skipped``.
        instance_ids: global instance ids (values of ``batch["index"]``) this rank trained on in the step,
            in the order its micro-batches came; an empty tensor when the batches carry no index.
    """

    step: int
    tokens_seen: int
    loss: float
    z_loss: float
    grad_norm: float
    lr: float
    finite: bool
    skipped: bool
    skip_reason: Optional[SkipReason]
    instance_ids: torch.Tensor
