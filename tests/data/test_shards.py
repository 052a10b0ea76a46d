import json

import numpy as np
import pytest

from olmo2_lit.data.shards import open_shard, read_tokens
from olmo2_lit.prepare.writer import RollingShardWriter, ShardWriter
from olmo2_lit.shard_format.layout import dtype_for_vocab, find_shards
from olmo2_lit.shard_format.sidecar import read_meta, sidecar_path, verify_checksum

WRITER = dict(vocab_size=1000, eos_token_id=0, tokenizer="tokenizer.json", tokenizer_sha256="ab" * 32)


def test_dtype_rule_is_the_smallest_uint_holding_vocab_minus_one():
    assert dtype_for_vocab(256) == np.uint8
    assert dtype_for_vocab(257) == np.uint16
    assert dtype_for_vocab(65536) == np.uint16
    assert dtype_for_vocab(65537) == np.uint32
    assert dtype_for_vocab(100278) == np.uint32  # dolma2 (OLMO2.md §4.4)


def test_written_shard_reads_back_equal_with_sidecar(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 1000, size=5000)
    tokens[[99, 2999, 4999]] = 0
    with ShardWriter(tmp_path / "a.npy", **WRITER) as w:
        w.write(tokens[:1234])
        w.write(tokens[1234:])
    shard = open_shard(tmp_path / "a.npy", vocab_size=1000)
    assert shard.num_tokens == 5000 and shard.dtype == np.uint16
    np.testing.assert_array_equal(read_tokens(shard, 0, 5000), tokens)
    np.testing.assert_array_equal(read_tokens(shard, 4000, 17), tokens[4000:4017])
    meta = read_meta(tmp_path / "a.npy")
    assert (meta.num_tokens, meta.num_documents, meta.dtype) == (5000, 3, "uint16")
    assert meta.max_token_id == int(tokens.max())
    verify_checksum(tmp_path / "a.npy")
    # headerless: the file is exactly the ids, as OLMo's memmap files are
    np.testing.assert_array_equal(np.fromfile(tmp_path / "a.npy", dtype=np.uint16), tokens)


def test_foreign_raw_uint32_file_reads_given_the_dtype(tmp_path):
    tokens = np.random.default_rng(1).integers(0, 100278, size=3 * 4096 + 5).astype(np.uint32)
    tokens.tofile(tmp_path / "part-0-00000.npy")  # as OLMo-mix-1124 files: no header, no sidecar
    shard = open_shard(tmp_path / "part-0-00000.npy", vocab_size=100278, dtype="uint32")
    assert shard.meta is None and shard.num_tokens == tokens.size
    np.testing.assert_array_equal(read_tokens(shard, 4096, 4096), tokens[4096:8192])


def test_rolling_writer_cuts_after_a_document_end(tmp_path):
    docs = [np.arange(1, n) for n in (7, 3, 12, 5)]
    stream = np.concatenate([np.append(d, 0) for d in docs])
    w = RollingShardWriter(tmp_path, prefix="part", shard_size_tokens=8, **WRITER)
    w.write(stream[:5])
    w.write(stream[5:])
    names = [n for n, _ in w.close()]
    assert names == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]
    pieces = [
        read_tokens(open_shard(tmp_path / n, vocab_size=1000), 0, read_meta(tmp_path / n).num_tokens)
        for n in names
    ]
    np.testing.assert_array_equal(np.concatenate(pieces), stream)
    assert all(p[-1] == 0 for p in pieces)  # whole documents per shard
    assert [len(p) for p in pieces] == [10, 12, 5]


def test_aborted_write_leaves_nothing_under_the_shard_name(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "a.npy", **WRITER) as w:
            w.write(np.arange(10))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_ids_outside_the_vocab(tmp_path):
    with pytest.raises(ValueError, match=r"a\.npy.*token id 1000"):
        with ShardWriter(tmp_path / "a.npy", **WRITER) as w:
            w.write(np.array([1, 1000]))


def _raw(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.npy", r"missing\.npy: shard not found"),
        (lambda p: _raw(p, "empty.npy", b""), r"empty\.npy: empty shard"),
        (
            lambda p: _raw(p, "odd.npy", b"\x01\x00\x00\x00\x02\x00"),
            r"odd\.npy: size 6 bytes is not a multiple",
        ),
        (
            lambda p: (np.save(p / "header.npy", np.arange(8, dtype=np.uint32)), p / "header.npy")[1],
            r"header\.npy: has a numpy header",
        ),
        (
            lambda p: _raw(p, "big.npy", np.array([5, 70000, 3], dtype=np.uint32).tobytes()),
            r"big\.npy: token id 70000 at position 1 \(byte 4\) >= vocab_size 50000",
        ),
    ],
)
def test_bad_shards_get_an_error_naming_the_file(tmp_path, make, message):
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        open_shard(make(tmp_path), vocab_size=50000, dtype="uint32")


def test_sampled_check_finds_a_bad_id_far_into_a_large_shard(tmp_path):
    tokens = np.ones(1_000_000, dtype=np.uint32)
    tokens[-3] = 999_999  # the last window is always sampled
    tokens.tofile(tmp_path / "s.npy")
    with pytest.raises(ValueError, match=r"s\.npy: token id 999999 at position 999997"):
        open_shard(tmp_path / "s.npy", vocab_size=50000, dtype="uint32")


@pytest.mark.parametrize(
    "field, value, config, message",
    [
        ("dtype", "uint32", {}, r"dtype uint32 disagrees with the configured uint16"),
        ("vocab_size", 999, {}, r"vocab_size 999 disagrees with the configured 1000"),
        ("eos_token_id", 5, {"eos_token_id": 0}, r"eos_token_id 5 disagrees with the configured 0"),
        (
            "num_tokens",
            11,
            {},
            r"holds 10 tokens but the sidecar records 11; the file was truncated or modified",
        ),
    ],
)
def test_sidecar_disagreeing_with_config_or_file_names_the_file(tmp_path, field, value, config, message):
    with ShardWriter(tmp_path / "a.npy", **WRITER) as w:
        w.write(np.arange(10))
    fields = json.loads(sidecar_path(tmp_path / "a.npy").read_text())
    fields[field] = value
    sidecar_path(tmp_path / "a.npy").write_text(json.dumps(fields))
    with pytest.raises(ValueError, match=r"a\.npy \(sidecar a\.meta\.json\): " + message):
        open_shard(tmp_path / "a.npy", vocab_size=1000, **config)


def test_checksum_detects_a_modified_shard(tmp_path):
    with ShardWriter(tmp_path / "a.npy", **WRITER) as w:
        w.write(np.arange(10))
    data = bytearray((tmp_path / "a.npy").read_bytes())
    data[4] ^= 1
    (tmp_path / "a.npy").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"a\.npy: checksum mismatch"):
        verify_checksum(tmp_path / "a.npy")


def test_find_shards_expands_dirs_and_globs_and_names_missing_paths(tmp_path):
    for name in ("b.npy", "a.npy", "c.meta.json"):
        (tmp_path / name).write_bytes(b"\0\0")
    assert [p.name for p in find_shards([str(tmp_path)])] == ["a.npy", "b.npy"]
    assert [p.name for p in find_shards([str(tmp_path / "b*")])] == ["b.npy"]
    with pytest.raises(FileNotFoundError, match="nope.npy: shard path not found"):
        find_shards([str(tmp_path / "nope.npy")])
    with pytest.raises(FileNotFoundError, match=r"z\*: glob pattern matches no shard file"):
        find_shards([str(tmp_path / "z*")])
