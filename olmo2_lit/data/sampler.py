"""The global data order and each rank's share of it.

- ``order`` picks whose shuffle to reproduce (``ORDERS``; OLMO2.md §4.4), both numpy ``PCG64`` permutations
  of the epoch's instances:
  - ``olmo``: the OLMo trainer's (``olmo/data/iterable_dataset.py``): ``PCG64(seed + epoch)``, first epoch 0;
  - ``olmo_core``: OLMo-core's ``NumpyFSLDataLoader``: ``PCG64(seed + epoch)`` with epochs numbered from 1,
    so our epoch ``e`` uses ``seed + e + 1``; with ``max_target_sequence_length`` it shuffles runs of
    ``chunk_size = max_target // sequence_length`` adjacent instances together.
  With one source (or weights proportional to the sizes) the epoch's instances are ``0..N-1`` and the
  order is exactly that trainer's. Nothing depends on world size or worker count.
- Global batch ``b`` is ``order[b*G : (b+1)*G]``; the tail that does not fill a batch is dropped.
- Rank ``r`` of ``W`` takes ``batch[r::W]`` and cuts it into micro-batches of ``M``. After ``j``
  micro-batches on every rank the ranks together have consumed exactly the batch's first ``j*M*W``
  instances, so a position counted in instances always names a prefix of the order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from olmo2_lit.data.mixture import epoch_instances


def _olmo(ids: np.ndarray, *, seed: int, epoch: int, chunk_size: int) -> np.ndarray:
    """OL ``IterableDataset._build_global_indices``: ``PCG64(seed + epoch)``, epochs from 0, no chunks."""
    if chunk_size != 1:
        raise ValueError(
            "max_target_sequence_length is OLMo-core's and the OLMo trainer has none: set order: "
            "olmo_core or max_target_sequence_length: null"
        )
    np.random.Generator(np.random.PCG64(seed + epoch)).shuffle(ids)
    return ids


def _olmo_core(ids: np.ndarray, *, seed: int, epoch: int, chunk_size: int) -> np.ndarray:
    """OC ``NumpyFSLDataLoader._build_global_indices``: ``get_rng(seed + epoch)`` with OC's epoch = ours + 1;
    with ``chunk_size`` > 1 it permutes runs of that many adjacent instances (a tail shorter than one run
    is dropped)."""
    rng = np.random.Generator(np.random.PCG64(seed + epoch + 1))
    if chunk_size == 1:
        rng.shuffle(ids)
        return ids
    chunks = np.arange(len(ids) // chunk_size, dtype=ids.dtype)
    rng.shuffle(chunks)  # the permutation depends only on the length, not on the dtype
    return ids[: len(chunks) * chunk_size].reshape(-1, chunk_size)[chunks].reshape(-1)


ORDERS: dict[str, Callable[..., np.ndarray]] = {"olmo": _olmo, "olmo_core": _olmo_core}
"""``data.order`` -> the shuffle of one epoch's instance ids."""


def order_length(epoch_size: int, chunk_size: int = 1) -> int:
    """Instances in an epoch's order: whole chunks only."""
    return epoch_size // chunk_size * chunk_size


def epoch_order(
    ranges: list[tuple[int, int]],
    counts: list[int],
    *,
    seed: int,
    epoch: int,
    order: str = "olmo",
    chunk_size: int = 1,
) -> np.ndarray:
    """The shuffled instance ids of one data epoch (``epoch`` counts from 0 for either order)."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of {sorted(ORDERS)}")
    return ORDERS[order](
        epoch_instances(ranges, counts, seed=seed, epoch=epoch), seed=seed, epoch=epoch, chunk_size=chunk_size
    )


def epoch_end(epoch_size: int, global_batch: int) -> int:
    """Instances of an epoch that are used: whole global batches only."""
    return epoch_size // global_batch * global_batch


def rank_micro_batches(
    order: Sequence[int] | np.ndarray,
    *,
    start: int,
    global_batch: int,
    micro_batch: int,
    rank: int,
    world_size: int,
) -> Iterator[np.ndarray]:
    """Rank ``rank``'s micro-batches of ``order`` from global position ``start`` to the epoch's end.

    ``order`` is an array or anything that slices like one (an ``order_file.OrderFile``); only one global
    batch of it is read at a time. ``start`` must be a multiple of ``micro_batch * world_size`` (a position
    the ranks reach together).
    """
    if global_batch % (micro_batch * world_size):  # the batch plan has said what to change before this
        raise ValueError(
            f"global batch {global_batch} does not split into micro-batches of {micro_batch} x {world_size}"
        )
    if start % (micro_batch * world_size):
        raise ValueError(f"start {start} is not a multiple of micro_batch x world_size")
    first, offset = divmod(start, global_batch)
    per_rank = global_batch // world_size
    for b in range(first, len(order) // global_batch):
        mine = np.asarray(order[b * global_batch : (b + 1) * global_batch])[rank::world_size]
        for m in range(offset // world_size if b == first else 0, per_rank, micro_batch):
            yield mine[m : m + micro_batch]
