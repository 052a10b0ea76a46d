"""The sidecar ``<name>.meta.json`` beside each shard this library writes: what the ids are and where
they came from. Shards written by OLMo/Dolma tooling have none and read as they are."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from olmo2_lit.atomic import PathLike, atomic_file
from olmo2_lit.errors import DataError

SHARD_FORMAT = "olmo2_lit.token_shard/1"


def sidecar_path(path: PathLike) -> Path:
    """``dir/part-00000.npy`` -> ``dir/part-00000.meta.json``."""
    return Path(path).with_suffix(".meta.json")


@dataclass(frozen=True)
class ShardMeta:
    """The sidecar of a shard written by this library.

    Attributes:
        dtype: numpy dtype name of the token ids, e.g. ``"uint32"``.
        vocab_size: the tokenizer's vocab size; every id is below it.
        eos_token_id: the id appended after each document.
        num_tokens: token count; the file holds ``num_tokens * itemsize`` bytes.
        num_documents: number of EOS tokens in the shard.
        max_token_id: the largest id in the shard.
        tokenizer: file name of the tokenizer.json the ids came from.
        tokenizer_sha256: sha256 of that tokenizer.json.
        checksum: ``"sha256:<hex>"`` of the shard's bytes.
        format: sidecar format tag.
    """

    dtype: str
    vocab_size: int
    eos_token_id: int
    num_tokens: int
    num_documents: int
    max_token_id: int
    tokenizer: str
    tokenizer_sha256: str
    checksum: str
    format: str = SHARD_FORMAT


def read_meta(path: PathLike) -> Optional[ShardMeta]:
    """The sidecar of shard ``path``, or None for a foreign shard that has none."""
    meta_path = sidecar_path(path)
    if not meta_path.exists():
        return None
    try:
        fields = json.loads(meta_path.read_text())
        return ShardMeta(**fields)
    except (json.JSONDecodeError, TypeError) as e:
        raise DataError(f"{meta_path}: unreadable shard sidecar ({e})") from e


def write_meta(path: PathLike, meta: ShardMeta) -> None:
    """Write the sidecar of shard ``path`` atomically."""
    with atomic_file(sidecar_path(path), "w") as f:
        f.write(json.dumps(dataclasses.asdict(meta), indent=2) + "\n")


def verify_checksum(path: PathLike, *, block_bytes: int = 64 << 20) -> None:
    """Read a whole shard and compare its sha256 with the sidecar (reads the file; not done at load)."""
    meta = read_meta(path)
    if meta is None:
        raise DataError(f"{path}: no sidecar, so no checksum to verify")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_bytes):
            digest.update(block)
    if f"sha256:{digest.hexdigest()}" != meta.checksum:
        raise DataError(f"{path}: checksum mismatch with its sidecar; the file is corrupt or was modified")
