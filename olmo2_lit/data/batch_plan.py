"""The batch plan: how one optimizer step's global batch is cut into micro-batches over ranks.

One frozen object, built once by ``TokenShardDataModule.setup("fit")`` where the world size is known,
and read by everything else through ``trainer.datamodule.batch_plan``: the LightningModule (gradient
accumulation, loss normalization), the LR scheduler (tokens per step) and the throughput callback
(step boundaries). Nothing else derives these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class BatchPlan:
    """Sizes of one optimizer step.

    Attributes:
        sequence_length: tokens per instance.
        global_batch: instances per optimizer step over all ranks (``data.global_batch_size``).
        micro_batch: instances per rank per forward pass (``data.micro_batch_size``).
        world_size: data-parallel ranks.
    """

    sequence_length: int
    global_batch: int
    micro_batch: int
    world_size: int = 1

    def __post_init__(self) -> None:
        sizes = (self.sequence_length, self.global_batch, self.micro_batch, self.world_size)
        if min(sizes) < 1:
            raise ValueError(
                "sequence_length, global_batch_size, micro_batch_size and world size must be >= 1, "
                f"got {', '.join(map(str, sizes))}"
            )
        if self.global_batch % self.instances_per_micro_step:
            raise ValueError(
                f"global_batch_size {self.global_batch} is not a multiple of micro_batch_size "
                f"{self.micro_batch} x world size {self.world_size} = {self.instances_per_micro_step}; "
                "change data.global_batch_size, data.micro_batch_size or the number of devices"
            )

    @property
    def instances_per_micro_step(self) -> int:
        """Instances all ranks consume together in one forward pass each."""
        return self.micro_batch * self.world_size

    @property
    def accumulation(self) -> int:
        """Micro-batches per rank per optimizer step (gradient-accumulation steps)."""
        return self.global_batch // self.instances_per_micro_step

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one global batch."""
        return self.global_batch * self.sequence_length

    def ends_step(self, batch_idx: int) -> bool:
        """Whether training micro-batch ``batch_idx`` of a data epoch is the last of an optimizer step.

        Data epochs end on whole global batches, so micro-batch indices restart at step boundaries.
        """
        return (batch_idx + 1) % self.accumulation == 0

    def with_world_size(self, world_size: int) -> BatchPlan:
        """The same global batch spread over ``world_size`` ranks (validated again)."""
        return BatchPlan(
            sequence_length=self.sequence_length,
            global_batch=self.global_batch,
            micro_batch=self.micro_batch,
            world_size=world_size,
        )
