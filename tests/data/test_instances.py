import numpy as np
import pytest
import torch

from olmo2_lit.data.instances import InstanceIndex, document_lengths, make_batch
from olmo2_lit.data.shards import open_shard


def _shards(tmp_path, arrays):
    paths = []
    for i, a in enumerate(arrays):
        np.asarray(a, dtype=np.uint16).tofile(tmp_path / f"{i}.npy")
        paths.append(open_shard(tmp_path / f"{i}.npy", vocab_size=1000))
    return paths


def test_instances_are_cut_per_shard_and_each_remainder_is_dropped(tmp_path):
    a, b, c = np.arange(100, 110), np.arange(200, 207), np.arange(300, 312)
    index = InstanceIndex(_shards(tmp_path, [a, b, c]), sequence_length=4)
    assert len(index) == 2 + 1 + 3
    expected = [a[0:4], a[4:8], b[0:4], c[0:4], c[4:8], c[8:12]]
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(index.read(i), want)
    assert index.locate(3)[1] == 0 and index.locate(4)[1] == 4
    with pytest.raises(IndexError):
        index.read(6)


def test_labels_are_shifted_targets_and_doc_lens_split_after_each_eos(tmp_path):
    tokens = np.array([5, 6, 0, 7, 8, 9, 0, 4, 0, 1, 2, 3, 4, 5, 6, 0])
    index = InstanceIndex(_shards(tmp_path, [tokens]), sequence_length=8)
    batch = make_batch(index, np.array([1, 0]), eos_token_id=0)
    np.testing.assert_array_equal(batch["input_ids"].numpy(), [tokens[8:], tokens[:8]])
    np.testing.assert_array_equal(batch["labels"][1].numpy(), [6, 0, 7, 8, 9, 0, 4, -100])
    np.testing.assert_array_equal(batch["index"].numpy(), [1, 0])
    np.testing.assert_array_equal(batch["doc_lens"].numpy(), [[1, 7, 0], [3, 4, 1]])
    assert batch["doc_lens"].dtype == torch.int32
    assert batch["input_ids"].dtype == batch["labels"].dtype == batch["index"].dtype == torch.int64
    assert "doc_lens" not in make_batch(index, np.array([0]))


def test_document_lengths_rows_sum_to_the_sequence_length():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 5, size=(16, 64))  # id 0 = EOS, ~20% of positions
    lens = document_lengths(tokens, 0)
    assert (lens.sum(1) == 64).all()
    for row, row_lens in zip(tokens, lens):
        ends = np.cumsum(row_lens[row_lens > 0])
        assert all(row[e - 1] == 0 for e in ends[:-1])  # every boundary sits right after an EOS


def test_instance_filter_masks_all_labels_of_repetitive_instances(tmp_path):
    clean = np.arange(1, 65)
    repetitive = np.concatenate([np.arange(1, 17), np.tile([7, 8, 9], 16)])  # 16 + 48 = 64 tokens, 16 repeats
    very = np.concatenate([np.arange(1, 5), np.tile([7, 8], 30)])  # 30 repeats: still below 32
    worst = np.full(64, 3)
    index = InstanceIndex(
        _shards(tmp_path, [np.concatenate([clean, repetitive, very, worst])]), sequence_length=64
    )
    labels = make_batch(index, np.arange(4), instance_filter=True)["labels"].numpy()
    assert (labels[3] == -100).all()
    for row in range(3):
        assert (labels[row, :-1] != -100).all()


def test_instance_filter_threshold_is_exactly_32_repeats_inside_make_batch(tmp_path):
    """Guards OLMo 2's threshold as make_batch applies it (OLMO2.md §3.2: >= 32 repeats of a 1-13 token
    n-gram): 31 repeats keep their labels and 32 lose them, for periods 1 and 2. A batch filter that
    passes its own threshold (31, or 33) instead of the rule's fails here even if ``ngram.py`` is right."""
    rows = [
        np.concatenate([[1, 2], np.tile([7, 8], 31)]),  # period 2, 31 repeats: kept
        np.tile([7, 8], 32),  # period 2, 32 repeats: masked
        np.concatenate([np.full(31, 3), np.arange(100, 133)]),  # period 1, 31 repeats: kept
        np.concatenate([np.full(32, 3), np.arange(100, 132)]),  # period 1, 32 repeats: masked
    ]
    index = InstanceIndex(_shards(tmp_path, [np.concatenate(rows)]), sequence_length=64)
    batch = make_batch(index, np.arange(4), instance_filter=True)
    np.testing.assert_array_equal(batch["instance_mask"].numpy(), [True, False, True, False])
    labels = batch["labels"].numpy()
    assert (labels[[1, 3]] == -100).all()
    assert (labels[[0, 2], :-1] != -100).all()


@pytest.mark.parametrize(("n", "micro", "world"), [(23, 2, 2), (24, 2, 2), (25, 2, 2), (24, 3, 4)])
def test_each_held_out_rank_yields_as_many_batches_as_its_len_says(tmp_path, n, micro, world):
    """Held-out batches are strided over the ranks: each rank's len() is the micro-batches it actually
    yields, n // (micro x world), the same on every rank (the tail that fills no round is dropped)."""
    from olmo2_lit.data.datasets import ValBatches

    index = InstanceIndex(_shards(tmp_path, [np.arange(4 * n) % 1000]), sequence_length=4)
    lens = []
    for rank in range(world):
        batches = ValBatches(index=index, micro_batch=micro, rank=rank, world_size=world, eos_token_id=None)
        assert len(batches) == len(list(batches)) == n // (micro * world)
        lens.append(len(batches))
    assert len(set(lens)) == 1
