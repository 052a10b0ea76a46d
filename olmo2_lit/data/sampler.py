"""The global data order and each rank's share of it.

- The epoch's instances are shuffled by numpy ``PCG64(seed + epoch)``, as OLMo does (OLMO2.md §4.4); with
  one source this is exactly OLMo's permutation. Nothing depends on world size or worker count.
- Global batch ``b`` is ``order[b*G : (b+1)*G]``; the tail that does not fill a batch is dropped.
- Rank ``r`` of ``W`` takes ``batch[r::W]`` and cuts it into micro-batches of ``M``. After ``j``
  micro-batches on every rank the ranks together have consumed exactly the batch's first ``j*M*W``
  instances, so a position counted in instances always names a prefix of the order.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from olmo2_lit.errors import ConfigError

from olmo2_lit.data.mixture import epoch_instances


def epoch_order(ranges: list[tuple[int, int]], counts: list[int], *, seed: int, epoch: int) -> np.ndarray:
    """The shuffled instance ids of one data epoch."""
    order = epoch_instances(ranges, counts, seed=seed, epoch=epoch)
    np.random.Generator(np.random.PCG64(seed + epoch)).shuffle(order)
    return order


def check_layout(*, global_batch: int, micro_batch: int, world_size: int) -> int:
    """Micro-batches per rank per global batch (the gradient-accumulation steps); raises if uneven."""
    if min(global_batch, micro_batch, world_size) < 1:
        raise ConfigError(f"global_batch_size, micro_batch_size and world size must be >= 1, got "
                         f"{global_batch}, {micro_batch}, {world_size}")
    if global_batch % (micro_batch * world_size):
        raise ConfigError(f"global_batch_size {global_batch} is not a multiple of micro_batch_size {micro_batch} x "
                         f"world size {world_size} = {micro_batch * world_size}; change one of them")
    return global_batch // (micro_batch * world_size)


def epoch_end(epoch_size: int, global_batch: int) -> int:
    """Instances of an epoch that are used: whole global batches only."""
    return epoch_size // global_batch * global_batch


def rank_micro_batches(order: np.ndarray, *, start: int, global_batch: int, micro_batch: int, rank: int,
                       world_size: int) -> Iterator[np.ndarray]:
    """Rank ``rank``'s micro-batches of ``order`` from global position ``start`` to the epoch's end.

    ``start`` must be a multiple of ``micro_batch * world_size`` (a position the ranks reach together).
    """
    check_layout(global_batch=global_batch, micro_batch=micro_batch, world_size=world_size)
    if start % (micro_batch * world_size):
        raise ValueError(f"start {start} is not a multiple of micro_batch x world_size")
    first, offset = divmod(start, global_batch)
    per_rank = global_batch // world_size
    for b in range(first, len(order) // global_batch):
        mine = order[b * global_batch:(b + 1) * global_batch][rank::world_size]
        for m in range(offset // world_size if b == first else 0, per_rank, micro_batch):
            yield mine[m:m + micro_batch]
