"""Every token id of a shard checked against the vocab once, at disk speed, and remembered.

Reading an id ``>= vocab_size`` mid-run crashes the embedding lookup with ``IndexError: index out of
range in self``, naming no file (issue 8). So each shard's largest id is found by one sequential pass
when it is first opened (about 1-2 GB/s from the page cache on 2 cores, docs/data.md), and the result
is cached in a small JSON record keyed by the shard's absolute path, size, mtime and dtype, written
atomically under ``$OLMO2_LIT_CACHE`` (default ``~/.cache/olmo2_lit/token_ranges``). A changed or
replaced shard has a new size or mtime and is scanned again.

It also refuses a raw file whose dtype guess is implausible: ids read with an item size half the
real one show up as pairs whose high half is always zero (e.g. uint32 ids read as uint16).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import DataError

CACHE_ENV = "OLMO2_LIT_CACHE"
_RECORD_FORMAT = "olmo2_lit.token_range/1"
_CHUNK_BYTES = 32 << 20
_PLAUSIBILITY_TOKENS = 1 << 16


def cache_dir() -> Path:
    """Where token-range records live: ``$OLMO2_LIT_CACHE`` or ``~/.cache/olmo2_lit/token_ranges``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "olmo2_lit" / "token_ranges"


def _key(path: Path, dtype: np.dtype) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "dtype": dtype.name}


def _record_path(key: dict) -> Path:
    return cache_dir() / (hashlib.sha256(key["path"].encode()).hexdigest()[:32] + ".json")


def cached_max_id(path: Path, dtype: np.dtype) -> Optional[int]:
    """The largest id recorded for this exact file (same path, size, mtime, dtype), or None."""
    key = _key(path, dtype)
    try:
        record = json.loads(_record_path(key).read_text())
    except (OSError, ValueError):
        return None
    if record.get("format") != _RECORD_FORMAT or {k: record.get(k) for k in key} != key:
        return None
    return int(record["max_token_id"])


def _remember(path: Path, dtype: np.dtype, max_id: int) -> None:
    key = _key(path, dtype)
    try:
        with atomic_file(_record_path(key), "w") as f:
            json.dump({"format": _RECORD_FORMAT, **key, "max_token_id": max_id}, f)
    except OSError:
        pass  # an unwritable cache only means scanning again next time


def scan_max_id(path: Path, dtype: np.dtype, *, vocab_size: int) -> int:
    """One sequential pass: the largest id; raises at the first id ``>= vocab_size``, naming its offset."""
    items = max(1, _CHUNK_BYTES // dtype.itemsize)
    buf = np.empty(items, dtype=dtype)
    largest, offset = 0, 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(memoryview(buf).cast("B")) // dtype.itemsize:
            chunk = buf[:n]
            top = int(chunk.max())
            if top >= vocab_size:
                first = int(np.argmax(chunk >= vocab_size))
                raise DataError(
                    f"{path}: token id {int(chunk[first])} at position {offset + first} (byte "
                    f"{(offset + first) * dtype.itemsize:,}) >= vocab_size {vocab_size}; the file holds ids "
                    f"of another tokenizer, or its dtype ({dtype.name}) or vocab_size is wrong"
                )
            largest = max(largest, top)
            offset += n
    return largest


def check_token_range(path: Path, dtype: np.dtype, *, vocab_size: int) -> int:
    """Every id of ``path`` is below ``vocab_size``: from the cache, or by a scan that is then cached.

    Returns:
        The largest id in the file.

    Raises:
        DataError: an id ``>= vocab_size``, naming the file, token and byte offset.
    """
    path = Path(path)
    max_id = cached_max_id(path, dtype)
    if max_id is None:
        max_id = scan_max_id(path, dtype, vocab_size=vocab_size)
        _remember(path, dtype, max_id)
    elif max_id >= vocab_size:  # cached from a run with a larger vocab: find the offset
        scan_max_id(path, dtype, vocab_size=vocab_size)
    return max_id


def check_dtype_plausible(path: Path, dtype: np.dtype, *, num_tokens: int) -> None:
    """Refuse ids that look like a wider dtype read as ``dtype`` (every other item zero).

    Little-endian ids of twice the item size, read at this size, give (low, high) pairs whose high
    half is zero for every id below ``2**(8 * itemsize)``: for real token data that pattern means
    the dtype is wrong, not that half the tokens are id 0.
    """
    if dtype.itemsize >= 8 or num_tokens < 64:
        return
    count = min(num_tokens, _PLAUSIBILITY_TOKENS) // 2 * 2
    ids = np.fromfile(path, dtype=dtype, count=count)
    low, high = ids[0::2], ids[1::2]
    if not high.any() and low.any():
        wider = np.dtype(f"uint{dtype.itemsize * 16}")
        raise DataError(
            f"{path}: every other {dtype.name} id in the first {count:,} is 0; "
            f"these look like {wider.name} ids "
            f"read as {dtype.name}. Set data.dtype: {wider.name} (OLMo's own shards are uint32)"
        )
