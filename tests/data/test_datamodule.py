import types
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from olmo2_lit.data.datamodule import PrepareSpec, TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.data.sampler import epoch_order
from olmo2_lit.prepare.writer import RollingShardWriter

VOCAB, T = 512, 16


def _write_shards(directory, n_tokens, *, seed=0, shard_size=300):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB, n_tokens)
    tokens[rng.random(n_tokens) < 0.05] = 0  # EOS
    w = RollingShardWriter(
        directory,
        prefix="part",
        shard_size_tokens=shard_size,
        vocab_size=VOCAB,
        eos_token_id=0,
        tokenizer="t.json",
        tokenizer_sha256="0" * 64,
    )
    w.write(tokens)
    w.close()
    return str(directory)


@pytest.fixture
def shards(tmp_path):
    """~40 instances of T=16 over a few shards, plus a val set."""
    return {
        "train": _write_shards(tmp_path / "train", 680),
        "val": _write_shards(tmp_path / "val", 100, seed=1),
    }


def _dm(shards, cls=TokenShardDataModule, **kw):
    args = dict(
        vocab_size=VOCAB,
        train_sources=[DataSource(paths=[shards["train"]])],
        val_paths=[shards["val"]],
        sequence_length=T,
        global_batch_size=8,
        micro_batch_size=2,
        seed=3,
    )
    return cls(**{**args, **kw})


class Recorder(L.LightningModule):
    """Records the instance ids of every training micro-batch it is given."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, 4)
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["index"].tolist())
        return self.emb(batch["input_ids"]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val", self.emb(batch["input_ids"]).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(dm, *, max_steps, root, ckpt_path=None, every=None):
    module = Recorder()
    callbacks = [ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1)] if every else []
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        accumulate_grad_batches=dm.batch_plan.accumulation,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        enable_checkpointing=bool(every),
        val_check_interval=4,
        default_root_dir=root,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module.seen


class EventLog(TokenShardDataModule):
    """Records the order in which Lightning calls the datamodule."""

    events: list = []

    def load_state_dict(self, state_dict):
        EventLog.events.append("load_state_dict")
        super().load_state_dict(state_dict)

    def train_dataloader(self):
        EventLog.events.append("train_dataloader")
        return super().train_dataloader()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_epoch_gives_the_identical_continuation(shards, tmp_path, num_workers):
    # 40 instances -> 5 steps of 8 per epoch, 4 micro-batches per step; 8 steps cross an epoch boundary.
    # (EventLog throughout: Lightning files the state under the datamodule's class name.)
    uninterrupted = _fit(_dm(shards, EventLog, num_workers=num_workers), max_steps=8, root=tmp_path / "a")
    assert len(uninterrupted) == 8 * 4
    first_dm = _dm(shards, EventLog, num_workers=num_workers)
    first = _fit(first_dm, max_steps=3, root=tmp_path / "b", every=3)
    assert first_dm.state_dict()["tokens"] == 3 * 8 * T  # consumed, not what the workers prefetched
    EventLog.events = []
    resumed = _fit(
        _dm(shards, EventLog, num_workers=num_workers),
        max_steps=8,
        root=tmp_path / "c",
        ckpt_path=str(tmp_path / "b" / "epoch=0-step=3.ckpt"),
    )
    assert first + resumed == uninterrupted
    assert EventLog.events.index("load_state_dict") < EventLog.events.index("train_dataloader")


def test_changed_global_batch_size_on_resume_continues_at_the_same_token(shards, tmp_path):
    first = _fit(_dm(shards), max_steps=3, root=tmp_path / "b", every=3)  # 24 of 40 instances
    resumed = _fit(
        _dm(shards, global_batch_size=16),
        max_steps=5,
        root=tmp_path / "c",
        ckpt_path=str(tmp_path / "b" / "epoch=0-step=3.ckpt"),
    )
    order0 = epoch_order([(0, 40)], [40], seed=3, epoch=0)
    order1 = epoch_order([(0, 40)], [40], seed=3, epoch=1)
    assert sum(first, []) == order0[:24].tolist()
    # the new layout keeps whole batches of 16: instances 24..31 finish epoch 0, then epoch 1 starts
    assert sum(resumed, [])[:8] == order0[24:32].tolist()
    assert sum(resumed, [])[8:24] == order1[:16].tolist()


def _stub_trainer(dm, rank, world_size):
    dm.trainer = types.SimpleNamespace(global_rank=rank, world_size=world_size, training=True)
    return dm


def _indices(loader):
    return [b["index"].tolist() for b in loader]


def test_two_ranks_read_disjoint_halves_of_every_global_batch(shards):
    single = _indices(_stub_trainer(_dm(shards), 0, 1).train_dataloader())
    ranks = [_indices(_stub_trainer(_dm(shards), r, 2).train_dataloader()) for r in (0, 1)]
    assert len(single) == 20 and all(len(r) == 10 for r in ranks)
    for step in range(5):  # 4 micro-batches per step on one rank, 2 per rank on two
        whole = sum(single[4 * step : 4 * step + 4], [])
        halves = [sum(r[2 * step : 2 * step + 2], []) for r in ranks]
        assert sorted(halves[0] + halves[1]) == sorted(whole) and not set(halves[0]) & set(halves[1])
    val = [_indices(_stub_trainer(_dm(shards), r, 2).val_dataloader()) for r in (0, 1)]
    flat = sum(val[0], []) + sum(val[1], [])
    assert sorted(flat) == list(range(4)) and len(val[0]) == len(val[1])  # 6 val instances, tail of 2 dropped


def test_batch_index_leads_back_to_the_tokens_on_disk(shards):
    dm = _dm(shards)
    batch = next(iter(dm.train_dataloader()))
    for row, index in enumerate(batch["index"].tolist()):
        path, start = dm.instance_location(index)
        on_disk = np.fromfile(path, dtype=np.uint16)[start : start + T]
        np.testing.assert_array_equal(batch["input_ids"][row].numpy(), on_disk)


def test_worker_count_does_not_change_the_batch_sequence(shards):
    dm = _dm(shards, document_masking=True)
    dm.setup("fit")
    reference = [b for b in dm.train_dataloader()]
    dm.num_workers = 2
    for got, want in zip(dm.train_dataloader(), reference, strict=True):
        for key in ("input_ids", "labels", "index", "doc_lens"):
            assert torch.equal(got[key], want[key])


def test_skip_tokens_jumps_forward_in_whole_micro_batches_across_epochs(shards):
    dm = _dm(shards)
    dm.setup("fit")
    full = _indices(dm.train_dataloader())
    dm.skip_tokens(5 * T)  # 5 instances round up to 6 (3 micro-batches of 2)
    assert _indices(dm.train_dataloader()) == full[3:]
    dm.skip_tokens(40 * T)  # past the end of the 40-instance epoch: 6 instances into epoch 1
    assert dm.position.epoch == 1 and dm.position.instances == 6
    state = dm.state_dict()
    assert (state["epoch"], state["tokens"], state["total_tokens"]) == (1, 6 * T, 46 * T)


def test_fingerprint_mismatch_names_the_shard_unless_ignored(shards, tmp_path):
    dm = _dm(shards)
    dm.setup("fit")
    dm.skip_tokens(8 * T)
    state = dm.state_dict()
    other = _write_shards(tmp_path / "other", 680, seed=9, shard_size=250)
    changed = _dm(shards, train_sources=[DataSource(paths=[other])])
    changed.setup("fit")
    with pytest.raises(
        ValueError,
        match=r"another shard set: source 0 shard part-00000\.npy holds \d+ tokens, "
        r"\d+ in the checkpoint.*ignore_fingerprint_mismatch",
    ):
        changed.load_state_dict(state)
    tolerant = _dm(shards, train_sources=[DataSource(paths=[other])], ignore_fingerprint_mismatch=True)
    with pytest.warns(UserWarning, match="different shard set"):
        tolerant.load_state_dict(state)  # before setup: applied when the shards are opened
        tolerant.setup("fit")
    assert tolerant.position.instances == 8


def test_metadata_disagreeing_with_the_config_names_the_file(shards):
    with pytest.raises(
        ValueError,
        match=r"part-00000\.npy \(sidecar part-00000\.meta\.json\): vocab_size 512 "
        r"disagrees with the configured 600",
    ):
        _dm(shards, vocab_size=600).setup("fit")
    with pytest.raises(ValueError, match=r"dtype uint16 disagrees with the configured uint32"):
        _dm(shards, dtype="uint32").setup("fit")
    with pytest.raises(ValueError, match=r"eos_token_id 0 disagrees with the configured 5"):
        _dm(shards, eos_token_id=5).setup("fit")


def test_foreign_shards_need_the_eos_id_for_document_masking(tmp_path):
    np.random.default_rng(0).integers(0, 100278, 4096).astype(np.uint32).tofile(tmp_path / "part-0-00000.npy")
    kwargs = dict(
        vocab_size=100278,
        train_sources=[DataSource(paths=[str(tmp_path / "part-0-00000.npy")])],
        sequence_length=512,
        global_batch_size=2,
        micro_batch_size=1,
        document_masking=True,
    )
    with pytest.raises(ValueError, match="document_masking needs the EOS id .* set eos_token_id"):
        TokenShardDataModule(**kwargs).setup("fit")
    dm = TokenShardDataModule(eos_token_id=100257, **kwargs)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (1, 512) and (batch["doc_lens"].sum(1) == 512).all()


def test_prepare_if_missing_builds_shards_once(tmp_path):
    out = tmp_path / "quick"
    dm = TokenShardDataModule(
        vocab_size=VOCAB,
        train_sources=[DataSource(paths=[str(out / "train")])],
        val_paths=[str(out / "val")],
        sequence_length=64,
        global_batch_size=4,
        micro_batch_size=2,
        prepare_if_missing=PrepareSpec(output_dir=str(out), max_input_bytes=200_000),
    )
    dm.prepare_data()
    manifest = (out / "manifest.json").stat().st_mtime_ns
    dm.prepare_data()
    assert (out / "manifest.json").stat().st_mtime_ns == manifest
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].max() < VOCAB and dm.eos_token_id == 0
    assert len(dm.val_dataloader()) > 0


def test_checkpoint_state_keeps_its_format(shards):
    """Checkpoints written before the position had its own object resume: the same keys, same meaning."""
    dm = _dm(shards)
    dm.setup("fit")
    dm.skip_tokens(10 * T)
    state = dm.state_dict()
    assert set(state) == {
        "version", "epoch", "tokens", "total_tokens", "seed", "sequence_length", "order",
        "max_target_sequence_length", "fingerprint", "shards", "eos_token_id", "vocab_size",
    }  # fmt: skip
    assert (state["version"], state["epoch"], state["tokens"], state["total_tokens"]) == (
        1,
        0,
        10 * T,
        10 * T,
    )
    resumed = _dm(shards)
    resumed.load_state_dict(state)
    resumed.setup("fit")
    assert resumed.state_dict() == state and resumed.tokens_seen == 10 * T


@pytest.mark.parametrize("instance_filter", [True, False])
def test_instance_filter_reaches_the_training_batches(tmp_path, instance_filter):
    """``instance_filter: true`` masks every label of an instance that repeats a 1-13-token n-gram 32 or
    more times (OLMo's rule) in the batches the train dataloader yields; ``false`` masks none."""
    clean = np.arange(1, 65)
    repetitive = np.full(64, 3)  # one token, 64 times
    np.concatenate([clean, repetitive, clean, clean]).astype(np.uint16).tofile(tmp_path / "part-0.npy")
    dm = TokenShardDataModule(
        vocab_size=VOCAB, train_sources=[DataSource(paths=[str(tmp_path / "part-0.npy")])],
        sequence_length=64, global_batch_size=4, micro_batch_size=4, seed=0,
        instance_filter=instance_filter, eos_token_id=0,
    )  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    masked = [bool((row == -100).all()) for row in batch["labels"]]
    rows = [int(torch.equal(row, torch.full((64,), 3))) for row in batch["input_ids"]]
    assert sum(rows) == 1
    assert masked == ([bool(r) for r in rows] if instance_filter else [False] * 4)
