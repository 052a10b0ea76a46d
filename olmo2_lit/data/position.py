"""The data position: where training is in the global data order, the run's token counter, and their
checkpoint state (docs/data.md, "Resume").

``TokenShardDataModule`` holds one :class:`PositionTracker`, made at ``setup("fit")`` once the batch plan
knows the world size and the epoch size is known. The position is counted in instances of the current
data epoch and saved in tokens, so a resume with another batch size continues at the same token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.resume import saved_position
from olmo2_lit.data.sampler import epoch_end


@dataclass
class DataPosition:
    """Where training is in the data: the data epoch, and instances of its order consumed by all ranks."""

    epoch: int = 0
    instances: int = 0


class PositionTracker:
    """Advances, rolls over, skips, saves and restores the data position and ``tokens_seen``.

    Args:
        plan: the batch plan with the real world size: tokens per instance, the global batch (an epoch
            ends on a whole one) and the instances all ranks take per micro-step (the unit of a skip).
        epoch_size: instances in one data epoch's order.

    Attributes:
        position: the current :class:`DataPosition`; the train dataset holds this object and reads it when
            iterated, so it is only ever changed in place.
        tokens_seen: training tokens consumed by all ranks over all epochs.
    """

    def __init__(self, *, plan: BatchPlan, epoch_size: int) -> None:
        self.plan = plan
        self.epoch_end = epoch_end(epoch_size, plan.global_batch)
        self.position = DataPosition()
        self.tokens_seen = 0

    def advance(self, instances: int) -> None:
        """Count ``instances`` consumed by all ranks, starting the next data epoch when this one ends."""
        self.tokens_seen += instances * self.plan.sequence_length
        self.position.instances += instances
        self._roll_over()

    def skip_tokens(self, tokens: int) -> None:
        """Jump forward by ``tokens``, rounded up to a whole micro-batch on every rank."""
        if tokens < 0:
            raise ValueError(f"skip_tokens needs tokens >= 0, got {tokens}")
        step = self.plan.instances_per_micro_step
        self.advance(math.ceil(tokens / self.plan.sequence_length / step) * step)

    def _roll_over(self) -> None:
        """Start the next data epoch once the last whole global batch of this one is consumed."""
        while self.position.instances >= self.epoch_end:
            self.position.epoch += 1
            self.position.instances -= self.epoch_end

    def state_dict(self) -> dict[str, Any]:
        """The position for the checkpoint: epoch, tokens into it, tokens seen, and the token unit."""
        return {
            "epoch": self.position.epoch,
            "tokens": self.position.instances * self.plan.sequence_length,
            "total_tokens": self.tokens_seen,
            "sequence_length": self.plan.sequence_length,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go to a saved position, rounded down to one every rank reaches together (``saved_position``)."""
        epoch, instances, self.tokens_seen = saved_position(
            state, sequence_length=self.plan.sequence_length, step=self.plan.instances_per_micro_step
        )
        self.position.epoch, self.position.instances = epoch, instances  # in place: the dataset holds it
        self._roll_over()
