"""Bad training data fails before the first step with one short message naming the file (and offset),
and leaves every pre-existing file as it was (and no log directory behind)."""

import json

import numpy as np
import pytest
from conftest import VOCAB, assert_short_error, snapshot, tiny_fit, write_ids


def _sidecar(shard, **changes):
    ids = np.fromfile(shard, dtype=np.uint16)
    meta = dict(
        dtype="uint16",
        vocab_size=VOCAB,
        eos_token_id=0,
        num_tokens=int(ids.size),
        num_documents=0,
        max_token_id=int(ids.max()),
        tokenizer="tokenizer.json",
        tokenizer_sha256="0" * 64,
        checksum="sha256:0",
    )
    meta.update(changes)
    shard.with_suffix(".meta.json").write_text(json.dumps(meta))


def _bad_id_deep_inside(shards):
    ids = np.random.default_rng(1).integers(0, VOCAB, 200_000)
    ids[123_457] = 300  # far from any sampled window: only a full scan finds it
    write_ids(shards / "part-0.npy", ids)
    return ["part-0.npy", "300", "position 123457", "byte 246,914", "vocab_size 256"]


def _uint32_read_as_uint16(shards):
    write_ids(shards / "part-0.npy", np.random.default_rng(2).integers(1, VOCAB, 4096), dtype="uint32")
    return ["part-0.npy", "look like uint32 ids read as uint16", "data.dtype: uint32"]


def _empty(shards):
    (shards / "part-1.npy").write_bytes(b"")
    return ["part-1.npy", "empty shard"]


def _numpy_header(shards):
    np.save(shards / "part-1.npy", np.arange(64, dtype=np.uint16))
    return ["part-1.npy", "numpy header", "tofile"]


def _odd_size(shards):
    (shards / "part-1.npy").write_bytes(b"\x01\x00\x02")
    return ["part-1.npy", "not a multiple of the uint16 item size"]


def _sidecar_vocab(shards):
    _sidecar(shards / "part-0.npy", vocab_size=512)
    return ["part-0.npy", "part-0.meta.json", "vocab_size 512 disagrees with the configured 256"]


def _sidecar_truncated(shards):
    _sidecar(shards / "part-0.npy", num_tokens=4096)
    return ["part-0.npy", "sidecar records 4096", "truncated"]


def _sidecar_garbage(shards):
    (shards / "part-0.meta.json").write_text("{not json")
    return ["part-0.meta.json", "unreadable shard sidecar"]


def _too_short(shards):
    for p in shards.iterdir():
        p.unlink()
    write_ids(shards / "tiny.npy", np.arange(10))
    return ["no shard holds a full instance of 32 tokens"]


def _prepare_output(shards):
    (shards / "train").mkdir()
    for p in sorted(shards.glob("*.npy")):
        p.rename(shards / "train" / p.name)
    (shards / "manifest.json").write_text("{}")
    return [str(shards), "holds no *.npy shards", "a prepare output", str(shards / "train")]


def _no_npy(shards):
    for p in shards.iterdir():
        p.unlink()
    (shards / "readme.txt").write_text("nothing here")
    return [str(shards), "holds no *.npy shards"]


@pytest.mark.parametrize(
    "make",
    [
        _bad_id_deep_inside,
        _uint32_read_as_uint16,
        _empty,
        _numpy_header,
        _odd_size,
        _sidecar_vocab,
        _sidecar_truncated,
        _sidecar_garbage,
        _too_short,
        _no_npy,
        _prepare_output,
    ],
)
def test_bad_shard_fails_at_open_naming_it(tmp_path, shards, cli, make):
    """Guards against: ids >= vocab crashing mid-run with an IndexError naming nothing, uint32 ids read as
    uint16 training on garbage, and data errors arriving as tracebacks or after steps are spent."""
    culprits = make(shards)
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards))
    assert_short_error(code, out, *culprits)
    assert snapshot(tmp_path) == before  # nothing changed, no log directory left behind
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(
    "paths, culprit",
    [
        (["{d}/missing.npy"], "missing.npy: shard path not found"),
        (["{d}/nothing-*.npy"], "nothing-*.npy: glob pattern matches no shard file"),
    ],
)
def test_missing_shard_paths_are_named(tmp_path, shards, cli, paths, culprit):
    """Guards against: a typo in a shard path ending in a traceback."""
    sources = json.dumps([{"paths": [p.format(d=shards) for p in paths]}])
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, f"--data.train_sources={sources}"))
    assert_short_error(code, out, culprit)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args, culprits",
    [
        (["--data.global_batch_size=5"], ["global_batch_size 5 is not a multiple of micro_batch_size 2"]),
        (["--data.global_batch_size=4096"], ["fewer than one global batch of 4096"]),
        (["--data.document_masking=true"], ["document_masking needs the EOS id", "eos_token_id"]),
        (["--data.train_sources=[]"], ["train_sources is empty"]),
        (
            ['--data.train_sources=[{"paths": ["{d}"], "weight": -1}]'],
            ["data.train_sources: source ['{d}'] has weight -1", ">= 0"],
        ),
        (["--data.num_workers=-1"], ["data.num_workers must be >= 0", "got -1"]),
        (["--data.eos_token_id=999"], ["data.eos_token_id 999 is not a token id of data.vocab_size 256"]),
        (["--data.seed=-1"], ["data.seed must be >= 0", "got -1"]),
        (['--data.train_sources=[{"paths": []}]'], ["data.train_sources: source", "has no paths"]),
        (['--data.val_paths=["{d}"]', "--data.val_batch_size=0"], ["data.val_batch_size must be >= 1"]),
    ],
)
def test_bad_data_settings_are_named(tmp_path, shards, cli, args, culprits):
    """Guards against: batch-layout and data-setting mistakes arriving as tracebacks (a negative source
    weight as mixture_counts' ValueError, `num_workers: -1` as torch's DataLoader ValueError, `seed: -1`
    as numpy's, leaving a lock file), an EOS id outside the vocab silently never matching, and
    `val_batch_size: 0` silently taken as micro_batch_size."""
    args = [a.replace("{d}", str(shards)) for a in args]
    culprits = [c.replace("{d}", str(shards)) for c in culprits]
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, *args))
    assert_short_error(code, out, *culprits)
    assert snapshot(tmp_path) == before


def test_token_range_is_cached_and_a_changed_shard_is_rescanned(tmp_path, shards):
    """Guards against: scanning every shard on every start (slow), or trusting a stale record after a
    shard changed (a bad id slipping through)."""
    from olmo2_lit.data import token_range

    shard = shards / "part-0.npy"
    dtype = np.dtype("uint16")
    assert token_range.check_token_range(shard, dtype, vocab_size=VOCAB) == int(
        np.fromfile(shard, dtype).max()
    )
    assert token_range.cached_max_id(shard, dtype) is not None
    ids = np.fromfile(shard, dtype)
    ids[-1] = 999
    write_ids(shard, ids)  # new mtime (and content): the record no longer applies
    assert token_range.cached_max_id(shard, dtype) is None
    with pytest.raises(ValueError, match=r"part-0\.npy: token id 999 at position 2047"):
        token_range.check_token_range(shard, dtype, vocab_size=VOCAB)
