import gzip
import json

import numpy as np
import pytest
import zstandard

from olmo2_lit.data.shards import open_shard, read_tokens
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.prepare.documents import resolve_inputs
from olmo2_lit.prepare.encode import EncodeConfig, Task, encode_task
from olmo2_lit.prepare.prepare import prepare
from olmo2_lit.shard_format.layout import find_shards
from olmo2_lit.shard_format.sidecar import read_meta
from olmo2_lit.shard_format.tokenizer import load_tokenizer

WORDS = "the of and to in is was for on that with as by at from his her which or an be this".split()


def _docs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(5, 60)))) for _ in range(n)]


def _jsonl(docs):
    return "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()


def _read_documents(directory, split):
    """Decode every document of a prepared split, in order, by cutting the token stream at EOS."""
    manifest = json.loads((directory / "manifest.json").read_text())
    tok = load_tokenizer(str(directory / "tokenizer.json"))
    shards = [open_shard(p, vocab_size=manifest["vocab_size"]) for p in find_shards([str(directory / split)])]
    stream = np.concatenate([read_tokens(s, 0, s.num_tokens) for s in shards])
    assert stream[-1] == manifest["eos_token_id"]
    cuts = np.flatnonzero(stream == manifest["eos_token_id"])
    return [tok.decode(doc[:-1].tolist()) for doc in np.split(stream, cuts + 1)[:-1]]


def test_prepared_shards_decode_back_to_the_input_documents(tmp_path):
    a, b, c = _docs(30, 1), _docs(20, 2), _docs(25, 3)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jsonl").write_bytes(_jsonl(a[:10] + [""] + a[10:]))  # the empty document is skipped
    (inputs / "b.jsonl.gz").write_bytes(gzip.compress(_jsonl(b)))
    (inputs / "c.json.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(c)))
    (inputs / "d.txt").write_text("one plain\ntext document\n")
    summary = prepare(
        inputs=[str(inputs)],
        output_dir=str(tmp_path / "out"),
        vocab_size=400,
        val_fraction=0.0,
        num_workers=1,
        shard_size_tokens=500,
        progress=False,
    )
    assert _read_documents(tmp_path / "out", "train") == a + b + c + ["one plain\ntext document\n"]
    assert summary.documents == 76 and summary.empty_documents == 1 and summary.val_tokens == 0
    assert len(summary.train_shards) > 1 and summary.dtype == "uint16"
    meta = read_meta(tmp_path / "out" / "train" / summary.train_shards[0])
    assert (meta.vocab_size, meta.eos_token_id, meta.tokenizer) == (400, 0, "tokenizer.json")
    assert summary.train_tokens == sum(
        read_meta(p).num_tokens for p in find_shards([str(tmp_path / "out/train")])
    )


def test_split_is_by_document_and_output_does_not_depend_on_worker_count(tmp_path):
    docs = _docs(300)
    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_bytes(_jsonl(docs[i * 100 : (i + 1) * 100]))
    inputs = [str(tmp_path / f"{i}.jsonl") for i in range(3)]
    for workers in (1, 2):
        prepare(
            inputs=inputs,
            output_dir=str(tmp_path / f"w{workers}"),
            vocab_size=400,
            val_fraction=0.3,
            num_workers=workers,
            progress=False,
        )
    train, val = _read_documents(tmp_path / "w1", "train"), _read_documents(tmp_path / "w1", "val")
    assert sorted(train + val) == sorted(docs)
    assert 60 <= len(val) <= 120  # 30% of 300
    for split in ("train", "val"):
        one, two = (tmp_path / f"w{w}/{split}/part-00000.npy" for w in (1, 2))
        assert one.read_bytes() == two.read_bytes()


def test_ngram_filter_removes_repetitive_documents_and_reports_counts(tmp_path, capsys):
    docs = _docs(40)
    docs[5] = "prefix " + "g4ODg4OD" * 400 + " suffix"  # the paper's example
    docs[17] = "x = [" + "0, " * 300 + "]"
    (tmp_path / "a.jsonl").write_bytes(_jsonl(docs))
    summary = prepare(
        inputs=[str(tmp_path / "a.jsonl")],
        output_dir=str(tmp_path / "out"),
        vocab_size=400,
        val_fraction=0.0,
        ngram_filter=True,
        num_workers=1,
    )
    assert summary.filtered_documents == 2 and summary.filtered_tokens > 0
    assert _read_documents(tmp_path / "out", "train") == [d for i, d in enumerate(docs) if i not in (5, 17)]
    assert "removed 2 of 40 documents" in capsys.readouterr().out


def test_ngram_filter_sees_a_run_across_pieces_of_a_long_text_document(tmp_path):
    text = "plain words here\n" * 50 + "abc\n" * 200 + "more words\n" * 50
    (tmp_path / "long.txt").write_text(text)
    tok = train_bpe([text, "the of and"], vocab_size=300)
    (source,) = resolve_inputs([str(tmp_path / "long.txt")])
    config = EncodeConfig(
        vocab_size=300,
        eos_token_id=0,
        val_fraction=0.0,
        seed=0,
        ngram_filter=True,
        batch_chars=64,
        piece_chars=40,
    )  # the run spans many pieces and batches
    task = Task(index=0, sources=(source,), train_path=str(tmp_path / "t"), val_path=str(tmp_path / "v"))
    result = encode_task(task, config, tok, lambda n: None)
    assert result.filtered_documents == 1 and result.train_documents == 0
    assert (tmp_path / "t").stat().st_size == 0


def test_token_id_outside_the_declared_vocab_fails_naming_the_input(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(_docs(20)))
    tok = train_bpe(_docs(200), vocab_size=400)
    tok.save(str(tmp_path / "tok.json"))
    with pytest.raises(ValueError, match=r"a\.jsonl \(document \d+\): token id \d+ >= vocab_size 260"):
        prepare(
            inputs=[str(tmp_path / "a.jsonl")],
            output_dir=str(tmp_path / "out"),
            tokenizer=str(tmp_path / "tok.json"),
            vocab_size=260,
            num_workers=1,
            progress=False,
        )
    assert not list((tmp_path / "out").rglob("*.npy")) and not (tmp_path / "out/manifest.json").exists()


def test_interrupted_prepare_leaves_no_shard_and_a_finished_one_is_kept(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(_docs(50)))
    (tmp_path / "b.jsonl").write_text('{"text": "fine"}\n{"text": "fine"}\n{broken\n')
    kwargs = dict(output_dir=str(tmp_path / "out"), vocab_size=300, num_workers=1, progress=False)
    with pytest.raises(ValueError, match=r"b\.jsonl:3: invalid JSON"):
        prepare(inputs=[str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], **kwargs)
    assert list((tmp_path / "out").rglob("*")) == []
    prepare(inputs=[str(tmp_path / "a.jsonl")], **kwargs)
    with pytest.raises(FileExistsError, match="manifest.json: .* already holds prepared shards"):
        prepare(inputs=[str(tmp_path / "a.jsonl")], **kwargs)
    prepare(inputs=[str(tmp_path / "a.jsonl")], overwrite=True, **kwargs)
    assert (tmp_path / "out/manifest.json").exists()


def test_shards_not_written_by_prepare_are_never_replaced_silently(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(_docs(5)))
    (tmp_path / "out/train").mkdir(parents=True)
    (tmp_path / "out/train/mine.npy").write_bytes(b"\0\0")
    with pytest.raises(
        FileExistsError, match=r"out: holds files that prepare did not write \(.*out/train/mine\.npy\)"
    ):
        prepare(
            inputs=[str(tmp_path / "a.jsonl")],
            output_dir=str(tmp_path / "out"),
            vocab_size=300,
            progress=False,
        )
    assert (tmp_path / "out/train/mine.npy").exists()


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt: input not found"):
        prepare(inputs=[str(tmp_path / "nowhere.txt")], output_dir=str(tmp_path / "out"), progress=False)
