"""Token shards in OLMo's on-disk format: the dtype rule, the sidecar, validation and reading.

A shard is a raw, headerless memmap file of token ids (OLMO2.md §4.4): documents are concatenated,
each followed by EOS, with no BOS. The dtype is the smallest unsigned int that holds ``vocab_size - 1``
(uint32 for the dolma2 vocab of 100,278). Files written by OLMo/Dolma tooling read as they are, given
the dtype. Shards written here (``writer.py``) also carry a sidecar ``<name>.meta.json`` (:class:`ShardMeta`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from olmo2_lit.data.token_range import check_dtype_plausible, check_token_range
from olmo2_lit.errors import ConfigError, DataError, DataNotFoundError

PathLike = Union[str, os.PathLike]

SHARD_FORMAT = "olmo2_lit.token_shard/1"
UINT_DTYPES = ("uint8", "uint16", "uint32", "uint64")
_NUMPY_MAGIC = b"\x93NUMPY"


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype holding ids ``0 .. vocab_size-1`` (OC ``NumpyDatasetConfig.get_dtype``)."""
    if vocab_size < 1:
        raise ConfigError(f"vocab_size must be >= 1, got {vocab_size}")
    for name in UINT_DTYPES:
        if vocab_size - 1 <= np.iinfo(name).max:
            return np.dtype(name)
    raise ConfigError(f"vocab_size {vocab_size} does not fit in uint64")


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


@dataclass(frozen=True)
class Shard:
    """A validated shard: where it is, its dtype and length, and its sidecar if it has one."""

    path: str
    dtype: np.dtype
    num_tokens: int
    meta: Optional[ShardMeta]


def open_shard(
    path: PathLike, *, vocab_size: int, dtype: Optional[str] = None, eos_token_id: Optional[int] = None
) -> Shard:
    """Validate one shard and describe it, every id included (one pass per file, then cached).

    Args:
        path: the shard file.
        vocab_size: the configured vocab size; the sidecar must agree and sampled ids must be below it.
        dtype: the configured dtype name; None derives it from ``vocab_size``.
        eos_token_id: the configured EOS id; the sidecar must agree when both are set.

    Raises:
        DataNotFoundError: the path does not exist.
        DataError: empty file, numpy header, size not a multiple of the dtype, sidecar disagreeing with
            the config or the file, a raw file whose ids look like a wider dtype, or an id
            ``>= vocab_size`` (:mod:`olmo2_lit.data.token_range`). Every message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: shard not found")
    np_dtype = np.dtype(dtype) if dtype is not None else dtype_for_vocab(vocab_size)
    if np_dtype.name not in UINT_DTYPES:
        raise DataError(f"{path}: dtype must be one of {UINT_DTYPES}, got {np_dtype.name}")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty shard (0 bytes)")
    with open(path, "rb") as f:
        if f.read(len(_NUMPY_MAGIC)) == _NUMPY_MAGIC:
            raise DataError(
                f"{path}: has a numpy header (written by np.save); token shards are raw "
                "memmaps, write them with array.tofile()"
            )
    if size % np_dtype.itemsize:
        raise DataError(
            f"{path}: size {size} bytes is not a multiple of the {np_dtype.name} item size "
            f"({np_dtype.itemsize}); wrong dtype or a truncated file"
        )
    meta = read_meta(path)
    if meta is not None:
        _check_meta(path, meta, size=size, dtype=np_dtype, vocab_size=vocab_size, eos_token_id=eos_token_id)
    shard = Shard(path=str(path), dtype=np_dtype, num_tokens=size // np_dtype.itemsize, meta=meta)
    if meta is None:
        check_dtype_plausible(path, np_dtype, num_tokens=shard.num_tokens)
    check_token_range(path, np_dtype, vocab_size=vocab_size)
    return shard


def _check_meta(
    path: Path, meta: ShardMeta, *, size: int, dtype: np.dtype, vocab_size: int, eos_token_id: Optional[int]
) -> None:
    where = f"{path} (sidecar {sidecar_path(path).name})"
    if meta.dtype != dtype.name:
        raise DataError(f"{where}: dtype {meta.dtype} disagrees with the configured {dtype.name}")
    if meta.vocab_size != vocab_size:
        raise DataError(f"{where}: vocab_size {meta.vocab_size} disagrees with the configured {vocab_size}")
    if eos_token_id is not None and meta.eos_token_id != eos_token_id:
        raise DataError(
            f"{where}: eos_token_id {meta.eos_token_id} disagrees with the configured {eos_token_id}"
        )
    if meta.num_tokens * dtype.itemsize != size:
        raise DataError(
            f"{where}: holds {size // dtype.itemsize} tokens but the sidecar records "
            f"{meta.num_tokens}; the file was truncated or modified"
        )
    if meta.max_token_id >= vocab_size:
        raise DataError(f"{where}: max token id {meta.max_token_id} >= vocab_size {vocab_size}")


def read_tokens(shard: Shard, start: int, count: int) -> np.ndarray:
    """Copy ``count`` ids from ``start`` out of a short-lived memmap window (int64).

    Mapping only the window, and dropping it at once, keeps RSS flat however much of a multi-GB
    shard set is read (a long-lived memmap keeps every touched page resident).
    """
    if start < 0 or start + count > shard.num_tokens:
        raise IndexError(f"{shard.path}: tokens [{start}, {start + count}) outside [0, {shard.num_tokens})")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    window = np.memmap(
        shard.path, dtype=shard.dtype, mode="r", offset=start * shard.dtype.itemsize, shape=(count,)
    )
    out = window.astype(np.int64)
    del window
    return out


def find_shards(paths: list[str]) -> list[Path]:
    """Expand files, directories (their ``*.npy``, not recursive) and glob patterns, in sorted order.

    Raises:
        FileNotFoundError: a path that does not exist, a pattern that matches nothing, or a directory
            without ``*.npy`` files.
    """
    found: list[Path] = []
    for entry in paths:
        if any(c in entry for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(entry, recursive=True) if Path(p).is_file())
            if not matches:
                raise DataNotFoundError(f"{entry}: glob pattern matches no shard file")
            found.extend(matches)
        elif Path(entry).is_dir():
            matches = sorted(Path(entry).glob("*.npy"))
            if not matches:
                raise DataNotFoundError(f"{entry}: directory holds no *.npy shards")
            found.extend(matches)
        elif Path(entry).is_file():
            found.append(Path(entry))
        else:
            raise DataNotFoundError(f"{entry}: shard path not found")
    return found


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
