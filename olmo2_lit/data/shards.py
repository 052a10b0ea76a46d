"""Opening token shards for reading: validate one against the config and its sidecar, and read ids.

The format itself (dtype rule, sidecar, layout) is ``olmo2_lit.shard_format``, shared with the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from olmo2_lit.atomic import PathLike
from olmo2_lit.data.token_range import check_dtype_plausible, check_token_range
from olmo2_lit.errors import DataError, DataNotFoundError
from olmo2_lit.shard_format.layout import NUMPY_MAGIC, UINT_DTYPES, dtype_for_vocab
from olmo2_lit.shard_format.sidecar import ShardMeta, read_meta, sidecar_path


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
        if f.read(len(NUMPY_MAGIC)) == NUMPY_MAGIC:
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
