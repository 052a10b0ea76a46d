"""Every rank's batches equal OLMo-core's loader (``order: olmo_core``) and the OLMo trainer's
(``order: olmo``).

OLMo-core is compared against itself: ai2-olmo-core's ``NumpyFSLDataset`` + ``NumpyFSLDataLoader`` built per
rank on the same raw uint32 shards. The OLMo trainer (``ai2-olmo``) pins numpy<2 and cannot be installed
beside our pins, so its order is a line-by-line transcription of its code (``_olmo_trainer_rank_batches``),
plus a hand-checked case.
"""

import os
import types

import numpy as np
import pytest

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource

VOCAB, EOS, T = 100278, 100257, 16
SIZES = [1000, 70, 333, 520, 47, 611]  # remainders of every kind: < T, between T and 2T, whole blocks


@pytest.fixture
def raw_shards(tmp_path):
    """Headerless uint32 token files, as OLMo-mix ships them (no sidecar)."""
    rng = np.random.default_rng(11)
    paths = []
    for i, n in enumerate(SIZES):
        path = tmp_path / "raw" / f"part-{i:02d}-00000.npy"
        path.parent.mkdir(exist_ok=True)
        rng.integers(0, VOCAB, n, dtype=np.uint32).tofile(path)
        paths.append(str(path))
    return paths


def _ours(paths, tmp_path, *, rank, world_size, global_batch, micro_batch, seed, epochs=2, **kw):
    """Our rank's batches as (index, input_ids) per optimizer step, over ``epochs`` data epochs."""
    dm = TokenShardDataModule(
        vocab_size=VOCAB,
        dtype="uint32",
        eos_token_id=EOS,
        sequence_length=T,
        train_sources=[DataSource(paths=paths)],
        global_batch_size=global_batch,
        micro_batch_size=micro_batch,
        seed=seed,
        **kw,
    )
    dm.trainer = types.SimpleNamespace(
        global_rank=rank, world_size=world_size, training=True, default_root_dir=str(tmp_path / "run")
    )
    dm.setup("fit")
    per_step = global_batch // (micro_batch * world_size)
    steps = []
    for _ in range(epochs):
        micro = list(dm.train_dataloader())
        for s in range(0, len(micro), per_step):
            group = micro[s : s + per_step]
            steps.append(
                (
                    np.concatenate([b["index"].numpy() for b in group]),
                    np.concatenate([b["input_ids"].numpy() for b in group]),
                )
            )
        dm.skip_tokens(len(micro) * micro_batch * world_size * T)  # to the start of the next epoch
    return steps


def _olmo_core(paths, tmp_path, *, rank, world_size, global_batch, seed, max_target=None, epochs=2):
    """ai2-olmo-core's loader for one rank, as its trainer drives it (``reshuffle(epoch)`` from 1)."""
    from olmo_core.data import DataCollator, NumpyDataLoaderBase, NumpyFSLDataset

    work = tmp_path / f"oc-{world_size}-{rank}"
    work.mkdir()
    dataset = NumpyFSLDataset(
        *paths,
        sequence_length=T,
        pad_token_id=VOCAB - 1,
        eos_token_id=EOS,
        vocab_size=VOCAB,
        dtype=np.uint32,
        max_target_sequence_length=max_target,
    )
    dataset.work_dir = work
    loader = NumpyDataLoaderBase.wrap_numpy_dataset(
        dataset,
        global_batch_size=global_batch * T,
        collator=DataCollator(pad_token_id=VOCAB - 1),
        work_dir=work,
        seed=seed,
        dp_world_size=world_size,
        dp_rank=rank,
        fs_local_rank=0,
    )
    steps = []
    for epoch in range(1, epochs + 1):
        loader.reshuffle(epoch=epoch)
        steps += [(b["index"].numpy(), b["input_ids"].numpy()) for b in loader]
        loader.reset()
    return steps


def _assert_same(ours, theirs):
    assert len(ours) == len(theirs) > 0
    for step, ((our_ids, our_tokens), (ids, tokens)) in enumerate(zip(ours, theirs)):
        np.testing.assert_array_equal(our_ids, ids, err_msg=f"step {step}: instance ids")
        np.testing.assert_array_equal(our_tokens, tokens, err_msg=f"step {step}: tokens")


@pytest.mark.parametrize("max_target", [None, 2 * T])
@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_olmo_core_order_equals_olmo_cores_loader_on_every_rank(raw_shards, tmp_path, world_size, max_target):
    """Guards against OLMo-core's epoch numbering (from 1), chunked shuffle and max_target instance cut
    drifting from ours: each rank's batches, over two epochs, equal ai2-olmo-core's instance for instance."""
    for rank in range(world_size):
        ours = _ours(
            raw_shards,
            tmp_path / f"ours-{world_size}-{rank}",
            rank=rank,
            world_size=world_size,
            global_batch=8,
            micro_batch=2,
            seed=34521,
            order="olmo_core",
            max_target_sequence_length=max_target,
        )
        theirs = _olmo_core(
            raw_shards,
            tmp_path,
            rank=rank,
            world_size=world_size,
            global_batch=8,
            seed=34521,
            max_target=max_target,
        )
        _assert_same(ours, theirs)


def test_olmo_order_is_not_olmo_cores(raw_shards, tmp_path):
    """Guards against the two orders silently coinciding (the test above would then prove nothing)."""
    olmo = _ours(
        raw_shards, tmp_path / "a", rank=0, world_size=1, global_batch=8, micro_batch=2, seed=5, epochs=1
    )
    core = _olmo_core(raw_shards, tmp_path, rank=0, world_size=1, global_batch=8, seed=5, epochs=1)
    assert not np.array_equal(olmo[0][0], core[0][0])


# ---- the OLMo trainer, transcribed ------------------------------------------------------------------
# allenai/OLMo at 59a53e3f68e546330ca5a99ec626e58f9ab96494:
# - olmo/data/memmap_dataset.py  MemMapDataset._get_file_length / offsets / _read_chunk_from_memmap
# - olmo/data/iterable_dataset.py  IterableDataset._build_global_indices / __iter__ (drop_last=True, as
#   every configs/official-* yaml sets data.drop_last: true)
# - olmo/data/__init__.py  build_train_dataloader: DataLoader(batch_size=device_train_batch_size,
#   drop_last=True), epoch=cfg.epoch or 0, seed=cfg.data.seed or cfg.seed
# - olmo/train.py  Trainer.split_batch (contiguous micro-batches), reshuffle(epoch + 1) at each epoch end


def _olmo_memmap_read(paths, index, chunk_size):
    offsets, start = [], 0
    for path in paths:  # MemMapDataset.offsets: file_size // (item_size * chunk_size) per file, in order
        length = os.path.getsize(path) // (np.dtype(np.uint32).itemsize * chunk_size)
        offsets.append((start, start + length))
        start += length
    for (lo, hi), path in zip(offsets, paths):
        if lo <= index < hi:
            local = index - lo
            return np.fromfile(path, dtype=np.uint32)[local * chunk_size : (local + 1) * chunk_size].astype(
                np.int64
            )
    raise IndexError(index)


def _olmo_global_indices(n, *, seed, epoch, world_size):
    """IterableDataset._build_global_indices with shuffle=True, drop_last=True."""
    if n % world_size != 0:
        num_samples = -(-(n - world_size) // world_size)  # math.ceil((len - world_size) / world_size)
    else:
        num_samples = -(-n // world_size)
    total_size = num_samples * world_size
    indices = np.arange(n, dtype=np.uint32)
    rng = np.random.Generator(np.random.PCG64(seed=seed + epoch))
    rng.shuffle(indices)
    return indices[:total_size], total_size


def _olmo_trainer_rank_batches(n, *, seed, epoch, global_batch, world_size, rank, start_index=0):
    """One epoch of rank ``rank``'s device batches (lists of instance ids), as the OLMo trainer gets them."""
    indices, total_size = _olmo_global_indices(n, seed=seed, epoch=epoch, world_size=world_size)
    if start_index > 0:
        indices = indices[start_index:]
    indices = indices[rank:total_size:world_size]  # "Slice indices by rank to avoid duplicates."
    device_batch = global_batch // world_size
    return [
        indices[i : i + device_batch].tolist()  # DataLoader(batch_size=device_batch, drop_last=True)
        for i in range(0, len(indices) - device_batch + 1, device_batch)
    ]


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_olmo_order_equals_the_olmo_trainers_on_every_rank(raw_shards, tmp_path, world_size):
    """Guards against drift from the OLMo trainer (1B/7B/13B): its PCG64(seed + epoch) from epoch 0, whole-
    stream rank striding, drop_last tail and contiguous micro-batches give each rank exactly our batches,
    tokens included, over two epochs."""
    n = sum(size // T for size in SIZES)
    for rank in range(world_size):
        ours = _ours(
            raw_shards,
            tmp_path / f"{world_size}-{rank}",
            rank=rank,
            world_size=world_size,
            global_batch=8,
            micro_batch=2,
            seed=6198,
            order="olmo",
        )
        theirs = []
        for epoch in (0, 1):
            for ids in _olmo_trainer_rank_batches(
                n, seed=6198, epoch=epoch, global_batch=8, world_size=world_size, rank=rank
            ):
                theirs.append((np.array(ids), np.stack([_olmo_memmap_read(raw_shards, i, T) for i in ids])))
        _assert_same(ours, theirs)


def test_olmo_trainer_restart_at_start_index_is_our_resume():
    """Guards the transcription itself: OLMo restarts at start_index = examples seen this epoch; its
    remaining batches are the tail of the uninterrupted ones, as our resume is."""
    full = _olmo_trainer_rank_batches(61, seed=6198, epoch=0, global_batch=8, world_size=2, rank=1)
    resumed = _olmo_trainer_rank_batches(
        61, seed=6198, epoch=0, global_batch=8, world_size=2, rank=1, start_index=3 * 8
    )
    assert resumed == full[3:] and len(full) == 61 // 8


def test_olmo_order_hand_checked_small_case(tmp_path):
    """Guards against an off-by-one in seed, epoch or rank striding, with numbers checked by hand.

    PCG64(6198 + 0) shuffles 0..9 to [2, 4, 7, 3, 8, 9, 0, 6, 1, 5] (numpy's stream, pinned here). With
    global batch 4 on 2 ranks, OLMo's drop_last keeps 2 whole batches, [2, 4, 7, 3] and [8, 9, 0, 6]:
    rank 0 takes their positions 0 and 2, rank 1 positions 1 and 3; instances 1 and 5 are dropped."""
    perm = np.arange(10)
    np.random.Generator(np.random.PCG64(6198)).shuffle(perm)
    assert perm.tolist() == [2, 4, 7, 3, 8, 9, 0, 6, 1, 5]
    rng = np.random.default_rng(0)
    path = tmp_path / "one.npy"
    rng.integers(0, VOCAB, 10 * T + 5, dtype=np.uint32).tofile(path)  # 10 instances, 5 tokens dropped
    rank0 = _ours(
        [str(path)], tmp_path / "r0", rank=0, world_size=2, global_batch=4, micro_batch=1, seed=6198, epochs=1
    )
    rank1 = _ours(
        [str(path)], tmp_path / "r1", rank=1, world_size=2, global_batch=4, micro_batch=1, seed=6198, epochs=1
    )
    assert [s[0].tolist() for s in rank0] == [[2, 7], [8, 0]]
    assert [s[0].tolist() for s in rank1] == [[4, 3], [9, 6]]
    assert _olmo_trainer_rank_batches(10, seed=6198, epoch=0, global_batch=4, world_size=2, rank=1) == [
        [4, 3],
        [9, 6],
    ]
    tokens = np.fromfile(path, dtype=np.uint32)
    np.testing.assert_array_equal(rank1[0][1][1], tokens[3 * T : 4 * T])  # instance 3 = tokens 48..63


def test_max_target_not_a_multiple_names_both(raw_shards):
    """Guards the bad-input message: it names max_target_sequence_length and sequence_length."""
    with pytest.raises(
        ValueError, match="max_target_sequence_length 24 is not a multiple of sequence_length 16"
    ):
        TokenShardDataModule(
            vocab_size=VOCAB,
            sequence_length=T,
            train_sources=[DataSource(paths=raw_shards)],
            global_batch_size=8,
            micro_batch_size=2,
            order="olmo_core",
            max_target_sequence_length=24,
        )
    with pytest.raises(ValueError, match="max_target_sequence_length 32 is OLMo-core's"):
        TokenShardDataModule(
            vocab_size=VOCAB,
            sequence_length=T,
            train_sources=[DataSource(paths=raw_shards)],
            global_batch_size=8,
            micro_batch_size=2,
            order="olmo",
            max_target_sequence_length=32,
        )
