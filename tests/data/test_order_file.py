"""The epoch order on disk: built once per node, reused on resume, fingerprint-checked, rebuilt when bad."""

import json
import logging
import subprocess
import sys
import textwrap
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.data.order_file import HEADER_BYTES, EpochOrders
from olmo2_lit.data.sampler import epoch_order

RANGES, COUNTS = [(0, 700), (700, 1000)], [700, 300]


def _orders(directory, **kw):
    args = dict(
        order="olmo_core",
        chunk_size=2,
        directory=str(directory),
        shards="abc",
        sequence_length=16,
        max_target_sequence_length=32,
    )
    return EpochOrders(**{**args, **kw})


def _get(orders, seed=7, epoch=0):
    return orders.get(ranges=RANGES, counts=COUNTS, seed=seed, epoch=epoch)


def _read_all(order_file):
    return np.asarray(order_file[0 : len(order_file)])


def test_order_file_holds_the_epoch_order_and_is_built_once(tmp_path, caplog):
    """Guards against the file differing from the in-memory order, and against rebuilding on every open."""
    caplog.set_level(logging.INFO, logger="olmo2_lit.data.order_file")
    first = _get(_orders(tmp_path))
    expected = epoch_order(RANGES, COUNTS, seed=7, epoch=0, order="olmo_core", chunk_size=2)
    np.testing.assert_array_equal(_read_all(first), expected)
    np.testing.assert_array_equal(first[10:14], expected[10:14])
    path = _orders(tmp_path).path(seed=7, epoch=0)
    inode = path.stat().st_ino
    again = _get(_orders(tmp_path))  # a resumed run, or another rank
    np.testing.assert_array_equal(_read_all(again), expected)
    assert path.stat().st_ino == inode
    assert sum("building the epoch order" in r.message for r in caplog.records) == 1
    assert path.stat().st_size == HEADER_BYTES + 4 * len(expected)


def test_truncated_order_file_is_rebuilt_and_logged(tmp_path, caplog):
    """Guards against a truncated file (a crash mid-copy, a full disk) being read as a shorter order."""
    expected = _read_all(_get(_orders(tmp_path)))
    path = _orders(tmp_path).path(seed=7, epoch=0)
    with open(path, "r+b") as f:
        f.truncate(HEADER_BYTES + 4 * 500)
    with caplog.at_level(logging.WARNING, logger="olmo2_lit.data.order_file"):
        rebuilt = _get(_orders(tmp_path))
    np.testing.assert_array_equal(_read_all(rebuilt), expected)
    assert any("truncated" in r.message and "rebuilding" in r.message for r in caplog.records), caplog.text


@pytest.mark.parametrize(
    "change",
    [
        dict(shards="another shard set"),
        dict(sequence_length=8),
        dict(max_target_sequence_length=64, chunk_size=4),
    ],
)
def test_foreign_order_file_is_rebuilt_naming_what_differs(tmp_path, caplog, change):
    """Guards against reusing an order built for another shard set, sequence length or max_target under the
    same name: the fingerprint catches it, the file is rebuilt, and the log names the field."""
    _get(_orders(tmp_path, **change))  # the foreign file, written under the same name
    with caplog.at_level(logging.WARNING, logger="olmo2_lit.data.order_file"):
        order = _get(_orders(tmp_path))
    np.testing.assert_array_equal(
        _read_all(order), epoch_order(RANGES, COUNTS, seed=7, epoch=0, order="olmo_core", chunk_size=2)
    )
    field = next(iter(change))
    assert any(f"built for another {field}" in r.message for r in caplog.records), caplog.text


def test_garbage_file_is_rebuilt(tmp_path, caplog):
    """Guards against a file that is not an order file at all (no header) being read as ids."""
    path = _orders(tmp_path).path(seed=7, epoch=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.arange(1000, dtype=np.uint32).tofile(path)  # e.g. OLMo's headerless global_indices.npy
    with caplog.at_level(logging.WARNING, logger="olmo2_lit.data.order_file"):
        order = _get(_orders(tmp_path))
    assert len(order) == 1000 and "no valid header" in caplog.text
    assert not np.array_equal(_read_all(order), np.arange(1000))


RACE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from olmo2_lit.data import order_file
    from olmo2_lit.data.sampler import epoch_order

    def build():
        with open(sys.argv[2], "a") as f:
            f.write("built\\n")
        time.sleep(0.5)  # widen the window in which the other processes arrive
        return epoch_order([(0, 5000)], [5000], seed=1, epoch=0)

    order = order_file.open_order(sys.argv[1], {"seed": 1}, build)
    print(int(np.asarray(order[0:len(order)]).astype(np.int64).sum()))
""")


def test_processes_of_a_node_build_the_order_once(tmp_path):
    """Guards against every rank/worker of a node building (and racing to write) its own copy."""
    log = tmp_path / "builds.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path / "o" / "epoch.order"), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert {o[0].strip() for o in outs} == {str(sum(range(5000)))}
    assert log.read_text().count("built") == 1


# ---- through the datamodule: resume reuses the file ---------------------------------------------------


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(512, 4)
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["index"].tolist())
        return self.emb(batch["input_ids"]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(paths, root, *, max_steps, ckpt_path=None):
    dm = TokenShardDataModule(
        vocab_size=512,
        dtype="uint16",
        sequence_length=16,
        train_sources=[DataSource(paths)],
        global_batch_size=8,
        micro_batch_size=2,
        seed=3,
        order="olmo_core",
        max_target_sequence_length=32,
    )
    module = Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        accumulate_grad_batches=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=3, save_top_k=-1)],
        default_root_dir=root,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module.seen


def test_olmo_core_order_resumes_exactly_and_reuses_the_order_file(tmp_path):
    """Guards exact resume in the OLMo-core order (chunked, max_target cut) across an epoch boundary, and
    that the resumed run reads the order file it built rather than rebuilding it."""
    path = tmp_path / "shard.npy"
    np.random.default_rng(0).integers(1, 512, 750, dtype=np.uint16).tofile(path)  # 46 instances: 5 steps
    straight = _fit([str(path)], tmp_path / "a", max_steps=8)
    _fit([str(path)], tmp_path / "b", max_steps=3)
    files = sorted((tmp_path / "b" / "data_order").glob("*.order"))
    assert [f.name for f in files] == ["epoch0000-olmo_core-seed3.order"]
    inode = files[0].stat().st_ino
    (ckpt,) = (tmp_path / "b" / "ckpt").glob("*step=3.ckpt")
    resumed = _fit([str(path)], tmp_path / "b", max_steps=8, ckpt_path=str(ckpt))
    assert resumed == straight[12:] and len(straight) == 32
    assert files[0].stat().st_ino == inode
    assert sorted(f.name for f in (tmp_path / "b" / "data_order").glob("*.order")) == [
        "epoch0000-olmo_core-seed3.order",
        "epoch0001-olmo_core-seed3.order",
    ]
    assert (
        json.loads(
            (tmp_path / "b" / "data_order" / files[0].name).read_bytes()[8:HEADER_BYTES].rstrip(b"\0")
        )["fingerprint"]["order"]
        == "olmo_core"
    )


def test_resuming_in_another_order_is_an_error_naming_both(tmp_path):
    """Guards against a checkpoint's token position being replayed in a different order (another trainer's
    shuffle or instance cut), which would silently repeat and skip data."""
    path = tmp_path / "shard.npy"
    np.random.default_rng(0).integers(1, 512, 750, dtype=np.uint16).tofile(path)

    def dm(**kw):
        module = TokenShardDataModule(
            vocab_size=512,
            dtype="uint16",
            sequence_length=16,
            global_batch_size=8,
            micro_batch_size=2,
            train_sources=[DataSource([str(path)])],
            **kw,
        )
        module.setup("fit")
        return module

    state = dm(order="olmo").state_dict()
    assert (state["order"], state["max_target_sequence_length"]) == ("olmo", None)
    with pytest.raises(
        ValueError,
        match="in the order 'olmo' with max_target_sequence_length None; this run has 'olmo_core' and 32",
    ):
        dm(order="olmo_core", max_target_sequence_length=32).load_state_dict(state)
    dm(order="olmo").load_state_dict(state)  # the same order resumes
