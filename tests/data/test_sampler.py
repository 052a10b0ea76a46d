import numpy as np
import pytest

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.mixture import epoch_instances, mixture_counts
from olmo2_lit.data.sampler import epoch_end, epoch_order, rank_micro_batches


def _stream(order, *, start=0, G, M, rank=0, W=1):
    return [
        b.tolist()
        for b in rank_micro_batches(
            order, start=start, global_batch=G, micro_batch=M, rank=rank, world_size=W
        )
    ]


def test_single_source_order_is_olmos_pcg64_seed_plus_epoch_permutation():
    order = epoch_order([(0, 1000)], [1000], seed=7, epoch=3)
    expected = np.arange(1000)
    np.random.Generator(np.random.PCG64(7 + 3)).shuffle(expected)  # OC data_loader get_rng(seed + epoch)
    np.testing.assert_array_equal(order, expected)
    assert not np.array_equal(order, epoch_order([(0, 1000)], [1000], seed=7, epoch=4))


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_split_every_global_batch_into_a_disjoint_partition(world_size):
    order = epoch_order([(0, 203)], [203], seed=0, epoch=0)
    G, M = 16, 2
    single = _stream(order, G=G, M=M)
    ranks = [_stream(order, G=G, M=M, rank=r, W=world_size) for r in range(world_size)]
    steps = len(order) // G
    per_step_single = G // M
    per_step_rank = G // (M * world_size)
    assert len(single) == steps * per_step_single and all(len(r) == steps * per_step_rank for r in ranks)
    for step in range(steps):
        whole = sum(single[step * per_step_single : (step + 1) * per_step_single], [])
        parts = [sum(r[step * per_step_rank : (step + 1) * per_step_rank], []) for r in ranks]
        assert sorted(sum(parts, [])) == sorted(whole)  # union equals the single-rank global batch
        assert len(set(sum(parts, []))) == G  # and the ranks overlap nowhere


def test_starting_mid_epoch_continues_the_same_stream():
    order = epoch_order([(0, 100)], [100], seed=1, epoch=0)
    full = _stream(order, G=8, M=2, rank=1, W=2)
    for consumed in (0, 4, 8, 12, 36):  # multiples of M x W, also mid global batch
        assert _stream(order, start=consumed, G=8, M=2, rank=1, W=2) == full[consumed // 4 :]


def test_layout_errors_say_what_to_change():
    assert BatchPlan(sequence_length=8, global_batch=32, micro_batch=4, world_size=2).accumulation == 4
    with pytest.raises(
        ValueError, match="global_batch_size 30 is not a multiple of micro_batch_size 4 x world size 2"
    ):
        BatchPlan(sequence_length=8, global_batch=30, micro_batch=4, world_size=2)


def test_mixture_counts_follow_the_weights_and_sum_to_the_epoch():
    assert mixture_counts([100, 100], [1, 1]) == [100, 100]
    assert mixture_counts([900, 100], [1, 1]) == [500, 500]  # the small source is repeated 5x
    assert mixture_counts([10, 10, 10], [1, 1, 1]) == [10, 10, 10]
    counts = mixture_counts([7, 5, 3], [0.5, 0.3, 0.2])
    assert sum(counts) == 15 and counts == [8, 4, 3]
    with pytest.raises(ValueError, match="source 1 has weight 1 but no instances"):
        mixture_counts([5, 0], [1, 1])


def test_epoch_instances_repeat_small_sources_and_subsample_large_ones():
    ranges, counts = [(0, 90), (90, 100)], mixture_counts([90, 10], [1, 1])  # 50 / 50
    ids = epoch_instances(ranges, counts, seed=0, epoch=0)
    big, small = ids[ids < 90], ids[ids >= 90]
    assert len(big) == 50 and len(set(big.tolist())) == 50  # a subset, no repeats
    assert np.bincount(small - 90).tolist() == [5] * 10  # every small instance 5x
    other = epoch_instances(ranges, counts, seed=0, epoch=1)
    assert set(other[other < 90].tolist()) != set(big.tolist())  # a different subset next epoch


def test_after_j_micro_batches_the_ranks_hold_a_prefix_of_the_order():
    """Guards the resume invariant of the sampler's docstring: rank r takes instances r, r + W, ... of
    each global batch, so after j micro-batches on every rank the ranks together have consumed exactly
    the first j * M * W instances of the order, and a position counted in instances names a prefix
    (resume on another world size relies on it). Contiguous per-rank slices fail this."""
    order = np.arange(100, 164)
    G, M, W = 16, 2, 2
    ranks = [_stream(order, G=G, M=M, rank=r, W=W) for r in range(W)]
    assert ranks[0][0] == [100, 102] and ranks[1][0] == [101, 103]
    for j in range(1, len(ranks[0]) + 1):
        consumed = sorted(i for stream in ranks for batch in stream[:j] for i in batch)
        assert consumed == order[: j * M * W].tolist(), j


def test_epoch_ends_where_the_stream_ends_on_whole_global_batches():
    """Guards the epoch tail (OLMo drops the instances that do not fill a global batch): the position
    where the datamodule starts the next epoch (``epoch_end``) must be where one epoch's stream of
    micro-batches ends, 192 of 203 instances at global batch 16; keeping the tail would leave the
    position short of the rollover forever."""
    order = epoch_order([(0, 203)], [203], seed=0, epoch=0)
    streamed = sum(len(batch) for batch in _stream(order, G=16, M=2))
    assert epoch_end(203, 16) == streamed == 192
