"""Tokenizers that are not byte-level, through the options that take a tokenizer: ``prepare --tokenizer``
(with its ``--eos_token`` and ``--vocab_size``) and the bits-per-byte table (``BitsPerByte.tokenizer``, or the
one prepared shards record). A SentencePiece-style BPE (Metaspace ``▁``, byte fallback, as Llama's) and a
WordPiece are built here with the ``tokenizers`` library; no hub."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from olmo2_lit.data.shards import open_shard, read_tokens
from olmo2_lit.eval.bits_per_byte import token_byte_lengths
from olmo2_lit.prepare.prepare import prepare
from olmo2_lit.shard_format.layout import find_shards

WORDS = "the cat sat on mat and dog ran far away with hat".split()
TEXTS = ["the cat sat on the mat", "a dog ran far, away with the hat", "hat cat mat"]
UNSEEN = "the café costs 5 €"  # é and € are not in the training text: byte fallback / unknown


def _metaspace_bpe() -> Tokenizer:
    """A BPE over ``▁``-marked words with byte fallback: a character it has no token for becomes its UTF-8
    bytes, as ``<0xNN>`` tokens of the vocabulary (Llama's layout)."""
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace()
    trained.train_from_iterator(
        TEXTS * 20, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"])
    )
    state = json.loads(trained.to_str())["model"]
    vocab = dict(state["vocab"])
    vocab.update({f"<0x{i:02X}>": len(vocab) + i for i in range(256)})
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    tok.add_special_tokens(["<unk>", "</s>"])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    # Llama's decoder: spaces back, bytes fused into characters, the first word's space dropped
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return tok


def _wordpiece() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        TEXTS * 20, trainers.WordPieceTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"])
    )
    return tok


@pytest.mark.parametrize("make", [_metaspace_bpe, _wordpiece], ids=["metaspace_bpe", "wordpiece"])
def test_bits_per_byte_counts_the_spaces_a_non_byte_level_tokenizer_drops(make):
    """Over a text, the byte table sums to the text's UTF-8 size plus the one space its first word's token
    stands for: ``▁the`` (or a WordPiece ``the`` after another word) is 4 bytes, `` the``, not the 3 of
    ``the`` decoded on its own (which made bpb about 25% too high on such text). A byte-fallback token
    ``<0xE2>`` is 1 byte; the special ``</s>`` is 0."""
    tok = make()
    table = token_byte_lengths(tok)
    texts = TEXTS + ([UNSEEN] if make is _metaspace_bpe else [])
    for text in texts:
        ids = tok.encode(text).ids
        assert int(table[ids].sum()) == len((" " + text).encode()), (text, tok.encode(text).tokens)
    assert int(table[tok.token_to_id("</s>")]) == 0
    if make is _metaspace_bpe:
        assert "<0xE2>" in tok.encode(UNSEEN).tokens and int(table[tok.token_to_id("<0xE2>")]) == 1
        assert int(table[tok.token_to_id("▁the")]) == 4


def test_prepare_with_a_sentencepiece_style_tokenizer_writes_its_ids_and_eos(tmp_path):
    """``--tokenizer`` (a Metaspace BPE's tokenizer.json) with ``--eos_token </s>``: every document is that
    tokenizer's ids followed by the id of ``</s>`` (not a trained BPE's ``<|endoftext|>``), the tokenizer is
    copied beside the shards, and ``--vocab_size 70000`` (larger than the tokenizer's 400) is recorded and
    makes the shards uint32 instead of the uint16 that 400 ids need."""
    tok = _metaspace_bpe()
    tok.save(str(tmp_path / "sp.json"))
    docs = [" ".join(np.random.default_rng(i).choice(WORDS, 12)) for i in range(20)] + [UNSEEN]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    common = dict(inputs=[str(tmp_path / "in.jsonl")], tokenizer=str(tmp_path / "sp.json"), eos_token="</s>")
    summary = prepare(output_dir=str(tmp_path / "out"), val_fraction=0.0, progress=False, **common)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    eos = tok.token_to_id("</s>")
    assert manifest["eos_token_id"] == eos and summary.dtype == "uint16"
    shards = [
        open_shard(p, vocab_size=manifest["vocab_size"]) for p in find_shards([str(tmp_path / "out/train")])
    ]
    stream = np.concatenate([read_tokens(s, 0, s.num_tokens) for s in shards]).tolist()
    assert stream == [i for d in docs for i in [*tok.encode(d).ids, eos]]
    assert Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json")).to_str() == tok.to_str()

    wide = prepare(
        output_dir=str(tmp_path / "wide"), vocab_size=70000, val_fraction=0.0, progress=False, **common
    )
    assert wide.dtype == "uint32"
    assert json.loads((tmp_path / "wide" / "manifest.json").read_text())["vocab_size"] == 70000


def test_a_tokenizer_without_an_anchor_counts_utf8_bytes():
    """A WordPiece with no ``a`` token gives the table no plain token to decode after, so each token is
    decoded alone; its length is still in UTF-8 bytes: ``café`` is 5, ``€`` 3, ``b`` 1."""
    vocab = {"<unk>": 0, "café": 1, "€": 2, "b": 3}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(["<unk>"])
    table = token_byte_lengths(tok)
    assert [int(table[i]) for i in range(4)] == [0, 5, 3, 1]
