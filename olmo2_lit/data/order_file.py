"""The epoch order on disk: built once per node into a file that every process reads a window at a time.

OLMo and OLMo-core keep the permutation in a memory-mapped ``global_indices.npy`` in the run's work dir
(OLMO2.md §4.4). Here, too, the first process on a node that needs epoch ``e`` takes a lock, builds the
order and writes it atomically (``olmo2_lit.atomic``); every other process, DataLoader workers included,
waits for the lock and reads the same file. A resumed run reuses it.

The file is a 4 KiB header (magic, then JSON: the fingerprint, the length and the dtype) followed by the
raw ids. The fingerprint names everything the order depends on: the shard set (its fingerprint), seed,
epoch, sequence length, ``max_target_sequence_length``, order kind, mixture counts. A file whose header
disagrees, or whose size does not match its length (truncated), is rebuilt, with a warning naming what
differed; it is never used.

Reads take one global batch at a time with ``os.pread`` on a descriptor held for the iteration, so a
process's memory does not grow with the instance count (benchmarks/bench_order.py, docs/data.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import numpy as np

from olmo2_lit.atomic import atomic_file
from olmo2_lit.data.sampler import epoch_order

log = logging.getLogger(__name__)

MAGIC = b"OL2ORDER"
HEADER_BYTES = 4096
VERSION = 1


class OrderFile:
    """A read-only view of an order file: ``len()`` and slices, read with ``pread`` (no memory map).

    Args:
        path: the order file.
        fd: an open descriptor of it (owned by this object; see :meth:`close`).
        length: ids in the file.
        dtype: their dtype.
    """

    def __init__(self, path: Path, fd: int, *, length: int, dtype: np.dtype) -> None:
        self.path, self.fd, self.length, self.dtype = path, fd, length, np.dtype(dtype)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("an OrderFile reads contiguous slices only")
        start, stop, _ = key.indices(self.length)
        count = max(0, stop - start)
        data = os.pread(self.fd, count * self.dtype.itemsize, HEADER_BYTES + start * self.dtype.itemsize)
        if len(data) != count * self.dtype.itemsize:
            raise OSError(f"{self.path}: short read; the order file changed while in use")
        return np.frombuffer(data, dtype=self.dtype)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


def _read_header(fd: int) -> Optional[dict[str, Any]]:
    raw = os.pread(fd, HEADER_BYTES, 0)
    if len(raw) < HEADER_BYTES or not raw.startswith(MAGIC):
        return None
    try:
        return json.loads(raw[len(MAGIC) :].rstrip(b"\0"))
    except ValueError:
        return None


def _problem(path: Path, fd: int, fingerprint: dict[str, Any]) -> Optional[str]:
    """Why the open file ``fd`` is not the order for ``fingerprint`` (None: it is)."""
    header = _read_header(fd)
    if header is None:
        return "no valid header"
    if header.get("fingerprint") != fingerprint:
        saved = header.get("fingerprint") or {}
        diff = [k for k in sorted(set(saved) | set(fingerprint)) if saved.get(k) != fingerprint.get(k)]
        return "built for another " + ", ".join(
            f"{k} ({saved.get(k)!r}, now {fingerprint.get(k)!r})" for k in diff
        )
    expected = HEADER_BYTES + header["length"] * np.dtype(header["dtype"]).itemsize
    size = os.fstat(fd).st_size
    if size != expected:
        return f"{size:,} bytes where {header['length']:,} ids need {expected:,} (truncated or modified)"
    return None


def _open_valid(path: Path, fingerprint: dict[str, Any]) -> tuple[Optional[OrderFile], Optional[str]]:
    """The file opened if it is the order for ``fingerprint``; else None and why (None: it is absent)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, None
    problem = _problem(path, fd, fingerprint)
    if problem is not None:
        os.close(fd)
        return None, problem
    header = _read_header(fd)
    return OrderFile(path, fd, length=header["length"], dtype=header["dtype"]), None


@contextlib.contextmanager
def _node_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` beside ``path``, held by one process of the node at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_order(path: Path, order: np.ndarray, fingerprint: dict[str, Any]) -> None:
    """Write ``order`` with its header, atomically (a reader sees the old file or the whole new one)."""
    header = json.dumps(
        {"version": VERSION, "fingerprint": fingerprint, "length": int(len(order)), "dtype": order.dtype.name}
    ).encode()
    if len(MAGIC) + len(header) > HEADER_BYTES:
        raise ValueError(f"{path}: order header of {len(header)} bytes does not fit in {HEADER_BYTES}")
    with atomic_file(path) as f:
        f.write((MAGIC + header).ljust(HEADER_BYTES, b"\0"))
        order.tofile(f)


def open_order(
    path: str | os.PathLike, fingerprint: dict[str, Any], build: Callable[[], np.ndarray]
) -> OrderFile:
    """The order file at ``path`` for ``fingerprint``, built with ``build()`` first if absent or invalid.

    Safe to call from every process of a node at once: one builds under the lock, the others wait and
    reuse. A file that is truncated or has another fingerprint is rebuilt and the event logged.
    """
    path = Path(path)
    order, _ = _open_valid(path, fingerprint)
    if order is not None:
        return order
    with _node_lock(path):
        order, problem = _open_valid(path, fingerprint)  # another process may have built it meanwhile
        if order is not None:
            return order
        if problem is None:
            log.info("%s: building the epoch order (%s)", path, _describe(fingerprint))
        else:
            log.warning("%s: %s; rebuilding the epoch order", path, problem)
        write_order(path, np.ascontiguousarray(build()), fingerprint)
    order, problem = _open_valid(path, fingerprint)
    if order is None:
        raise RuntimeError(f"{path}: the order file just written does not read back ({problem})")
    return order


def _describe(fingerprint: dict[str, Any]) -> str:
    keys = ("order", "seed", "epoch", "sequence_length", "max_target_sequence_length")
    return ", ".join(f"{k} {fingerprint.get(k)}" for k in keys if k in fingerprint)


class EpochOrders:
    """Each epoch's order for one training set: from a file under ``directory``, or in memory without one.

    Args:
        order: ``data.order``, a key of ``sampler.ORDERS``.
        chunk_size: OLMo-core's ``max_target_sequence_length // sequence_length`` (1 without it).
        directory: where the order files live (one per epoch); None builds the order in memory.
        shards: the training set's fingerprint (``TrainingSet.fingerprint``: shards and weights).
        sequence_length: tokens per instance.
        max_target_sequence_length: OLMo-core's, or None.
    """

    def __init__(
        self,
        *,
        order: str,
        chunk_size: int,
        directory: Optional[str],
        shards: str,
        sequence_length: int,
        max_target_sequence_length: Optional[int],
    ) -> None:
        self.order, self.chunk_size, self.directory = order, chunk_size, directory
        self.shards, self.sequence_length, self.max_target = (
            shards,
            sequence_length,
            max_target_sequence_length,
        )

    def fingerprint(self, *, ranges: list[tuple[int, int]], counts: list[int], seed: int, epoch: int) -> dict:
        """Everything the epoch's order depends on."""
        # the mixture as a digest, so that any number of sources fits the header
        mixture = json.dumps([[list(map(int, r)) for r in ranges], [int(c) for c in counts]])
        return {
            "order": self.order,
            "seed": seed,
            "epoch": epoch,
            "sequence_length": self.sequence_length,
            "max_target_sequence_length": self.max_target,
            "shards": self.shards,
            "mixture": hashlib.sha256(mixture.encode()).hexdigest()[:16],
        }

    def path(self, *, seed: int, epoch: int) -> Path:
        return Path(self.directory) / f"epoch{epoch:04d}-{self.order}-seed{seed}.order"

    def get(
        self, *, ranges: list[tuple[int, int]], counts: list[int], seed: int, epoch: int
    ) -> OrderFile | np.ndarray:
        """The order of ``epoch``: an :class:`OrderFile`, or an array when there is no directory."""

        def build() -> np.ndarray:
            return epoch_order(
                ranges, counts, seed=seed, epoch=epoch, order=self.order, chunk_size=self.chunk_size
            )

        if self.directory is None:
            return build()
        fingerprint = self.fingerprint(ranges=ranges, counts=counts, seed=seed, epoch=epoch)
        return open_order(self.path(seed=seed, epoch=epoch), fingerprint, build)
