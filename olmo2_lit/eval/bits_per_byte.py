"""Bits per byte of held-out text: a loss that compares models with different tokenizers.

``bpb = sum over held-out target tokens of CE (nats) / (ln 2 * UTF-8 bytes of those tokens)``.

The byte length of a token comes from the tokenizer. For a byte-level BPE (dolma2, GPT-2, the BPE
``olmo2-lit prepare`` trains) every character of a token's string stands for exactly one byte (the
GPT-2 byte-to-unicode table), so a token's byte length is the length of its string, exact even for
tokens that hold part of a multi-byte character. For other tokenizers it is the UTF-8 length the token
adds to the text decoded before it (a ``<0xNN>`` byte-fallback token counts 1): decoded on its own, a
SentencePiece-style ``▁the`` (Metaspace) or a WordPiece ``the`` loses the space it stands for, which
undercounted such text by about one byte per word. Special tokens (EOS, padding) count 0 bytes: their loss
is in the numerator, as it is in the training loss, but they are not text. So over a shard, the byte count
is the UTF-8 size of the decoded documents (for those other tokenizers, plus at most one byte per document:
the space its first word's token stands for, which decoding drops).

The tokenizer is the one recorded in the shards' sidecars (``olmo2-lit prepare`` writes them; the
file's sha256 must match; ``TokenShardDataModule.tokenizer_identity``), or the one given to the
:class:`~olmo2_lit.callbacks.bits_per_byte.BitsPerByte` callback (needed for OLMo's own raw shards).
"""

from __future__ import annotations

import re
from typing import Any, Optional

import torch
from tokenizers import Tokenizer

from olmo2_lit.data.contract import RunData

_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def _is_byte_level(tokenizer: Tokenizer) -> bool:
    decoder = tokenizer.decoder
    return decoder is not None and "ByteLevel" in type(decoder).__name__ + repr(decoder)


def token_byte_lengths(tokenizer: Tokenizer, *, size: Optional[int] = None) -> torch.Tensor:
    """(size,) int64: UTF-8 bytes of each token id (0 for special tokens and ids past the vocab).

    Args:
        tokenizer: a ``tokenizers`` tokenizer.
        size: length of the table (the model's vocab_size); default the tokenizer's vocab size.
    """
    n = tokenizer.get_vocab_size(with_added_tokens=True)
    table = torch.zeros(size or n, dtype=torch.long)
    special = {tok.content for tok in tokenizer.get_added_tokens_decoder().values() if tok.special}
    byte_level = _is_byte_level(tokenizer)
    anchor = None if byte_level else _anchor(tokenizer)
    for token, idx in tokenizer.get_vocab(with_added_tokens=True).items():
        if idx >= table.numel() or token in special:
            continue
        if byte_level:
            table[idx] = len(token)
        elif _BYTE_FALLBACK.match(token):
            table[idx] = 1
        elif anchor is not None:  # in context: the space a word-initial token stands for counts
            after = tokenizer.decode([anchor, idx], skip_special_tokens=False).encode("utf-8")
            table[idx] = len(after) - len(
                tokenizer.decode([anchor], skip_special_tokens=False).encode("utf-8")
            )
        else:
            table[idx] = len(tokenizer.decode([idx], skip_special_tokens=False).encode("utf-8"))
    return table


def _anchor(tokenizer: Tokenizer) -> Optional[int]:
    """A plain token to decode others after (``a``), or None if the tokenizer has none."""
    ids = tokenizer.encode("a", add_special_tokens=False).ids
    return ids[-1] if len(ids) == 1 and tokenizer.decode(ids).strip() == "a" else None


def held_out_token_bytes(datamodule: Any, vocab_size: int) -> Optional[torch.Tensor]:
    """The byte-length table for the tokenizer the datamodule's shards record, if it is known
    (:meth:`~olmo2_lit.data.contract.RunData.tokenizer_identity`)."""
    recorded = datamodule.tokenizer_identity() if isinstance(datamodule, RunData) else None
    tok = recorded.load() if recorded is not None else None
    return None if tok is None else token_byte_lengths(tok, size=vocab_size)


def bits_per_byte(nats: torch.Tensor, n_bytes: torch.Tensor) -> torch.Tensor:
    """Summed CE in nats over summed bytes -> bits per byte."""
    return nats / (n_bytes.clamp(min=1) * torch.log(torch.tensor(2.0, device=nats.device)))
