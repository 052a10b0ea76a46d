"""The iterable datasets behind the train and val dataloaders; each item is one micro-batch dict.

They are iterable, not map-style, so Lightning never injects a ``DistributedSampler``: each dataset
already yields only its rank's share. Micro-batch ``j`` of a rank is built by DataLoader worker
``j % num_workers``, and the DataLoader returns workers' items round-robin, so the stream is the same
for any worker count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.instances import InstanceIndex, make_batch
from olmo2_lit.data.order_file import EpochOrders
from olmo2_lit.data.position import DataPosition
from olmo2_lit.data.sampler import epoch_end, epoch_order, order_length, rank_micro_batches


def _this_workers_share(batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    for j, ids in enumerate(batches):
        if j % workers == worker:
            yield ids


class TrainBatches(IterableDataset):
    """One rank's training micro-batches, from the shared :class:`DataPosition` to the end of its epoch.

    The position is read when iteration starts (DataLoader workers receive a copy then), so batches
    that workers prefetch never move it; the datamodule advances it as the loop consumes batches. The
    batch plan gives the global batch (an epoch ends on a whole one), the micro batch and the world size.
    The epoch's order comes from ``orders`` (an order file shared by the node's processes, or in memory);
    without it, the OLMo trainer's order is built in memory.
    """

    def __init__(
        self,
        *,
        index: InstanceIndex,
        ranges: list[tuple[int, int]],
        counts: list[int],
        seed: int,
        position: DataPosition,
        plan: BatchPlan,
        rank: int,
        eos_token_id: Optional[int],
        instance_filter: bool,
        orders: Optional[EpochOrders] = None,
    ) -> None:
        self.index, self.ranges, self.counts, self.seed, self.position = index, ranges, counts, seed, position
        self.plan, self.rank = plan, rank
        self.eos_token_id, self.instance_filter, self.orders = eos_token_id, instance_filter, orders

    def __len__(self) -> int:
        """Micro-batches per rank in a whole data epoch (Lightning's epoch length)."""
        size = order_length(sum(self.counts), self.orders.chunk_size if self.orders else 1)
        return epoch_end(size, self.plan.global_batch) // self.plan.instances_per_micro_step

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self._batches(
            self.position.epoch, self.position.instances
        )  # snapshot now, not at first next()

    def _batches(self, epoch: int, start: int) -> Iterator[dict[str, torch.Tensor]]:
        if self.orders is None:
            order = epoch_order(self.ranges, self.counts, seed=self.seed, epoch=epoch)
        else:
            order = self.orders.get(ranges=self.ranges, counts=self.counts, seed=self.seed, epoch=epoch)
        ids = rank_micro_batches(
            order,
            start=start,
            global_batch=self.plan.global_batch,
            micro_batch=self.plan.micro_batch,
            rank=self.rank,
            world_size=self.plan.world_size,
        )
        try:
            for micro in _this_workers_share(ids):
                yield make_batch(
                    self.index, micro, eos_token_id=self.eos_token_id, instance_filter=self.instance_filter
                )
        finally:
            if hasattr(order, "close"):
                order.close()


class ValBatches(IterableDataset):
    """One rank's validation micro-batches: the held-out instances in order, strided over ranks.

    The tail that does not fill one micro-batch on every rank is dropped, so all ranks run the same
    number of steps.
    """

    def __init__(
        self,
        *,
        index: InstanceIndex,
        micro_batch: int,
        rank: int,
        world_size: int,
        eos_token_id: Optional[int],
    ) -> None:
        self.index, self.micro_batch, self.rank, self.world_size = index, micro_batch, rank, world_size
        self.eos_token_id = eos_token_id

    def __len__(self) -> int:
        return len(self.index) // (self.micro_batch * self.world_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = np.arange(len(self.index), dtype=np.int64)
        ids = rank_micro_batches(
            order,
            start=0,
            global_batch=self.micro_batch * self.world_size,
            micro_batch=self.micro_batch,
            rank=self.rank,
            world_size=self.world_size,
        )
        for micro in _this_workers_share(ids):
            yield make_batch(self.index, micro, eos_token_id=self.eos_token_id)
