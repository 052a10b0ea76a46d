"""Non-default values of ``data`` options change what the datamodule reads and yields
(tests/options_coverage.py): raw shards in each dtype, a source's name, the held-out batch size, where the
order file goes, pinned memory, and the fields of ``prepare_if_missing``."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from olmo2_lit.data.datamodule import PrepareSpec, TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.errors import DataError

T = 16


def _raw(directory, tokens: np.ndarray, dtype: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    tokens.astype(dtype).tofile(directory / "part-0.npy")  # no sidecar: OLMo's own raw files
    return str(directory)


def _dm(**kw) -> TokenShardDataModule:
    defaults = dict(sequence_length=T, global_batch_size=4, micro_batch_size=2, dtype="uint16")
    return TokenShardDataModule(**{**defaults, **kw})


@pytest.mark.parametrize(
    ("dtype", "vocab"), [("uint8", 200), ("uint16", 50_000), ("uint32", 100_278), ("uint64", 2**33)]
)
def test_raw_shards_are_read_in_the_dtype_given(tmp_path, dtype, vocab):
    """A raw file of ids written as ``dtype`` reads back id for id (held-out batches are in order); read
    with another width, the same bytes are other ids (or an error), so the option decides the reading."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, min(vocab, 200), 8 * T)
    tokens[-1] = vocab - 1  # the largest id this vocab allows
    path = _raw(tmp_path / dtype, tokens, dtype)
    dm = _dm(vocab_size=vocab, val_paths=[path], dtype=dtype, val_batch_size=8)
    dm.setup("validate")
    (batch,) = list(dm.val_dataloader())
    assert batch["input_ids"].flatten().tolist() == tokens.tolist()
    other = {"uint8": "uint16", "uint16": "uint32", "uint32": "uint16", "uint64": "uint32"}[dtype]
    wrong = _dm(vocab_size=2**33, val_paths=[path], dtype=other, val_batch_size=1)
    try:
        wrong.setup("validate")
        first = next(iter(wrong.val_dataloader()))["input_ids"].flatten().tolist()
    except (DataError, ValueError):
        return
    assert first != tokens[:T].tolist()


def test_a_source_name_labels_its_errors_and_summary(tmp_path, caplog):
    """``name: web`` is how the source is called in the start-up summary and in its errors (default
    ``source<i>``)."""
    good = _raw(tmp_path / "good", np.arange(4 * T) % 100, "uint16")
    short = _raw(tmp_path / "short", np.arange(T // 2), "uint16")
    named = [DataSource(paths=[good], name="books"), DataSource(paths=[short], name="web")]
    with pytest.raises(DataError, match=r"^web \(\[") as err:
        _dm(vocab_size=100, train_sources=named).setup("fit")
    assert "source1" not in str(err.value)
    with pytest.raises(DataError, match=r"^source1 \(\["):
        _dm(vocab_size=100, train_sources=[DataSource(paths=[good]), DataSource(paths=[short])]).setup("fit")
    dm = _dm(vocab_size=100, train_sources=[DataSource(paths=[good], name="books")])
    lightning_log = logging.getLogger("lightning.pytorch")  # it does not propagate to the root logger
    lightning_log.addHandler(caplog.handler)
    try:
        dm.setup("fit")
    finally:
        lightning_log.removeHandler(caplog.handler)
    assert "(books: 4 instances, 1.00x per epoch)" in caplog.text


def test_val_batch_size_sets_the_held_out_batches(tmp_path):
    """10 held-out instances: ``val_batch_size: 4`` gives two batches of 4 (the tail that does not fill a
    batch is dropped, as ValBatches documents), where the default, the micro-batch of 2, gives five of 2."""
    path = _raw(tmp_path / "val", np.arange(10 * T) % 100, "uint16")
    sizes = {}
    for given in (None, 4):
        dm = _dm(vocab_size=100, val_paths=[path], val_batch_size=given)
        dm.setup("validate")
        sizes[given] = [b["input_ids"].shape[0] for b in dm.val_dataloader()]
    assert sizes[None] == [2] * 5
    assert sizes[4] == [4, 4]


def test_order_dir_holds_the_epoch_order_file(tmp_path):
    """With ``order_dir`` the epoch's order is built into a file there (shared by the node's processes);
    without it, and outside a fit, none is written anywhere."""
    path = _raw(tmp_path / "train", np.arange(40 * T) % 100, "uint16")
    for order_dir in (None, tmp_path / "orders"):
        dm = _dm(
            vocab_size=100,
            train_sources=[DataSource(paths=[path])],
            order_dir=None if order_dir is None else str(order_dir),
        )
        dm.setup("fit")
        next(iter(dm.train_dataloader()))
    assert len(list((tmp_path / "orders").glob("*.order"))) == 1
    assert [p.name for p in tmp_path.rglob("*.order")] == [
        p.name for p in (tmp_path / "orders").glob("*.order")
    ]


def test_pin_memory_reaches_every_dataloader(tmp_path):
    """``pin_memory: true`` is handed to the training and held-out dataloaders (default false); pinning
    itself needs a CUDA device, absent here."""
    path = _raw(tmp_path / "d", np.arange(8 * T) % 100, "uint16")
    for pin in (False, True):
        dm = _dm(vocab_size=100, train_sources=[DataSource(paths=[path])], val_paths=[path], pin_memory=pin)
        dm.setup("fit")
        assert dm.train_dataloader().pin_memory is pin and dm.val_dataloader().pin_memory is pin


def test_prepare_if_missing_fields_reach_prepare(tmp_path):
    """``prepare_if_missing`` with its own inputs, tokenizer, val_fraction and seed prepares exactly what
    ``olmo2-lit prepare`` with those values prepares: the same manifest (split counts, tokenizer) and the
    same shard bytes; another seed splits the documents differently."""
    from olmo2_lit.prepare.bpe import train_bpe
    from olmo2_lit.prepare.prepare import prepare

    docs = [" ".join(["word"] * (i % 7 + 1) + [str(i)]) for i in range(200)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    train_bpe(docs, vocab_size=300).save(str(tmp_path / "tok.json"))
    fields = dict(inputs=[str(tmp_path / "in.jsonl")], tokenizer=str(tmp_path / "tok.json"), val_fraction=0.3)

    def via_datamodule(out, seed):
        spec = PrepareSpec(output_dir=str(out), seed=seed, **fields)
        dm = _dm(
            vocab_size=300, train_sources=[DataSource(paths=[str(out / "train")])], prepare_if_missing=spec
        )
        dm.prepare_data()
        return json.loads((out / "manifest.json").read_text())

    ours = via_datamodule(tmp_path / "a", seed=5)
    prepare(output_dir=str(tmp_path / "b"), seed=5, vocab_size=300, progress=False, **fields)
    theirs = json.loads((tmp_path / "b" / "manifest.json").read_text())
    for key in ("documents", "train_tokens", "val_tokens", "vocab_size", "eos_token_id", "tokenizer_sha256"):
        if key in theirs:
            assert ours[key] == theirs[key], key
    assert (
        0.2 < ours["val_tokens"] / (ours["train_tokens"] + ours["val_tokens"]) < 0.45
    )  # not the default 0.01
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "tok.json").read_bytes()
    for split in ("train", "val"):
        for f in sorted((tmp_path / "b" / split).glob("*.npy")):
            assert (tmp_path / "a" / split / f.name).read_bytes() == f.read_bytes()
    other = via_datamodule(tmp_path / "c", seed=6)
    assert other["val_tokens"] != ours["val_tokens"]
