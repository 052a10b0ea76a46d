import gzip
import json

import pytest
import zstandard

from olmo2_lit.prepare.corpus import STDLIB_CORPUS, stdlib_files
from olmo2_lit.prepare.documents import DocumentReader, resolve_inputs, split_ranges


def _jsonl(docs):
    return "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)).encode()


def _texts(source, **kw):
    return [p.text for p in DocumentReader(source, **kw)]


def test_jsonl_plain_gzip_and_zstd_read_the_same_documents(tmp_path):
    docs = ["first doc", "second\nwith newline", "", "ünïcode ✓"]
    (tmp_path / "a.jsonl").write_bytes(_jsonl(docs))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(_jsonl(docs)))
    (tmp_path / "c.json.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(docs)))
    sources = resolve_inputs([str(tmp_path)])
    assert [(s.key, s.kind, s.compression) for s in sources] == [
        ("a.jsonl", "jsonl", None),
        ("b.jsonl.gz", "jsonl", "gzip"),
        ("c.json.zst", "jsonl", "zstd"),
    ]
    for source in sources:
        assert _texts(source) == docs


def test_plain_text_is_one_document_in_newline_cut_pieces(tmp_path):
    text = "".join(f"line {i}\n" for i in range(1000))
    (tmp_path / "t.txt").write_text(text)
    (source,) = resolve_inputs([str(tmp_path / "t.txt")])
    pieces = list(DocumentReader(source, piece_chars=100))
    assert "".join(p.text for p in pieces) == text
    assert all(p.text.endswith("\n") for p in pieces)
    assert [p.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert {p.doc_id for p in pieces} == {0}


def test_byte_ranges_cover_every_line_once(tmp_path):
    docs = [f"document {i} " + "x" * (i % 37) for i in range(500)]
    (tmp_path / "big.jsonl").write_bytes(_jsonl(docs))
    (source,) = resolve_inputs([str(tmp_path / "big.jsonl")])
    ranges = split_ranges(source, target_bytes=1000)
    assert len(ranges) > 10
    seen = [p for r in ranges for p in DocumentReader(r)]
    assert [p.text for p in seen] == docs
    assert len({p.doc_id for p in seen}) == len(docs)


def test_bad_input_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl: input not found"):
        resolve_inputs([str(tmp_path / "missing.jsonl")])
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON"):
        _texts(resolve_inputs([str(tmp_path / "bad.jsonl")])[0])
    (tmp_path / "nofield.jsonl").write_text('{"content": "x"}\n')
    with pytest.raises(ValueError, match=r"nofield\.jsonl:1: no string field 'text'"):
        _texts(resolve_inputs([str(tmp_path / "nofield.jsonl")])[0])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="empty_dir: input directory holds no text or JSONL files"):
        resolve_inputs([str(tmp_path / "empty_dir")])


def test_embedded_corpus_is_the_stdlib_without_tests_or_site_packages():
    files = stdlib_files()
    names = {f.name for f in files}
    assert {"os.py", "argparse.py"} <= names
    assert not any(part in ("site-packages", "test") for f in files for part in f.parts[-3:-1])
    sources = resolve_inputs([STDLIB_CORPUS])
    assert "os.py" in {s.key for s in sources} and all(s.kind == "text" for s in sources)
    assert sum(s.size for s in sources) > 5_000_000
