import pytest

from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.shard_format.tokenizer import eos_token_id, load_tokenizer, tokenizer_sha256

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "naïve café – ünïcödé ✓ 中文\n",
] * 10


def test_byte_level_bpe_round_trips_any_text_and_reserves_eos(tmp_path):
    tok = train_bpe(TEXTS, vocab_size=300, eos_token="<|endoftext|>")
    assert eos_token_id(tok, "<|endoftext|>", source="bpe") == 0
    assert 258 <= tok.get_vocab_size() <= 300
    unseen = "zebra ⚡ 🦜 \t\r\n"  # never in the training text: bytes still cover it
    ids = tok.encode(unseen, add_special_tokens=False).ids
    assert tok.decode(ids) == unseen
    assert max(ids) < 300
    tok.save(str(tmp_path / "tokenizer.json"))
    reloaded = load_tokenizer(str(tmp_path / "tokenizer.json"))
    assert tokenizer_sha256(reloaded) == tokenizer_sha256(tok)


def test_errors_name_the_tokenizer(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json: tokenizer.json not found"):
        load_tokenizer(str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a readable tokenizers tokenizer.json"):
        load_tokenizer(str(tmp_path / "bad.json"))
    tok = train_bpe(TEXTS, vocab_size=300)
    with pytest.raises(ValueError, match=r"my-tok: tokenizer has no token '</s>'"):
        eos_token_id(tok, "</s>", source="my-tok")
    with pytest.raises(ValueError, match="must exceed 257"):
        train_bpe(TEXTS, vocab_size=257)
