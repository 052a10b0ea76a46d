"""Writing token shards atomically: one shard (:class:`ShardWriter`) or a rolling set of them.

An interrupted write never leaves a file under a shard's final name: bytes go to a hidden temp file
that is renamed into place, after its sidecar, once complete (issue 3, "bad input").
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from olmo2_lit.atomic import PathLike, atomic_file
from olmo2_lit.shard_format.layout import dtype_for_vocab
from olmo2_lit.shard_format.sidecar import ShardMeta, write_meta


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place."""
    with atomic_file(path, "w") as f:
        f.write(text)


class ShardWriter:
    """Appends token ids to one shard through a temp file; :meth:`close` makes it appear atomically.

    The sidecar is renamed into place first and the shard last, so an interrupted write never leaves a
    file under the shard's name that is not complete.

    Args:
        path: final shard path (``.npy`` by OLMo convention, although it has no numpy header).
        vocab_size: the tokenizer's vocab size; it fixes the dtype.
        eos_token_id: the EOS id, used to count documents.
        tokenizer: file name of the tokenizer.json, recorded in the sidecar.
        tokenizer_sha256: its sha256, recorded in the sidecar.
    """

    def __init__(
        self, path: PathLike, *, vocab_size: int, eos_token_id: int, tokenizer: str, tokenizer_sha256: str
    ) -> None:
        self.path = Path(path)
        self.dtype = dtype_for_vocab(vocab_size)
        self._fields = dict(
            vocab_size=vocab_size,
            eos_token_id=eos_token_id,
            tokenizer=tokenizer,
            tokenizer_sha256=tokenizer_sha256,
        )
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._file = open(self._tmp, "wb")
        self._hash = hashlib.sha256()
        self.num_tokens = 0
        self._num_documents = 0
        self._max_token_id = -1

    def write(self, tokens: np.ndarray) -> None:
        """Append ids (any integer dtype); raises if one is outside ``[0, vocab_size)``."""
        if tokens.size == 0:
            return
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self._fields["vocab_size"]:
            raise ValueError(
                f"{self.path}: token id {hi if hi >= 0 else lo} outside [0, {self._fields['vocab_size']})"
            )
        data = np.ascontiguousarray(tokens, dtype=self.dtype).tobytes()
        self._file.write(data)
        self._hash.update(data)
        self.num_tokens += tokens.size
        self._num_documents += int(np.count_nonzero(tokens == self._fields["eos_token_id"]))
        self._max_token_id = max(self._max_token_id, hi)

    def close(self) -> ShardMeta:
        """Finish the shard: fsync, write the sidecar, rename both into place."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        meta = ShardMeta(
            dtype=self.dtype.name,
            num_tokens=self.num_tokens,
            num_documents=self._num_documents,
            max_token_id=self._max_token_id,
            checksum=f"sha256:{self._hash.hexdigest()}",
            **self._fields,
        )
        write_meta(self.path, meta)
        os.replace(self._tmp, self.path)
        return meta

    def abort(self) -> None:
        """Drop the partial shard."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class RollingShardWriter:
    """Writes a token stream as ``<prefix>-00000.npy``, ``<prefix>-00001.npy``, ... in ``directory``.

    A shard closes at the first document end (EOS) at or after ``shard_size_tokens``, so every shard
    holds whole documents, as Dolma's do; a document longer than a shard simply makes it longer.

    Args:
        directory: where the shards go.
        prefix: file name prefix.
        shard_size_tokens: target tokens per shard.
        vocab_size: the tokenizer's vocab size (fixes the dtype).
        eos_token_id: the EOS id.
        tokenizer: file name of the tokenizer.json, for the sidecars.
        tokenizer_sha256: its sha256, for the sidecars.
    """

    def __init__(
        self,
        directory: PathLike,
        *,
        prefix: str,
        shard_size_tokens: int,
        vocab_size: int,
        eos_token_id: int,
        tokenizer: str,
        tokenizer_sha256: str,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.shard_size_tokens = shard_size_tokens
        self.dtype = dtype_for_vocab(vocab_size)
        self._fields = dict(
            vocab_size=vocab_size,
            eos_token_id=eos_token_id,
            tokenizer=tokenizer,
            tokenizer_sha256=tokenizer_sha256,
        )
        self.eos_token_id = eos_token_id
        self.closed: list[tuple[str, ShardMeta]] = []
        self._current: ShardWriter | None = None

    def write(self, tokens: np.ndarray) -> None:
        """Append ids; rolls over to a new shard after the first EOS past the size target."""
        while tokens.size:
            if self._current is None:
                name = f"{self.prefix}-{len(self.closed):05d}.npy"
                self._current = ShardWriter(self.directory / name, **self._fields)
            room = self.shard_size_tokens - self._current.num_tokens
            if tokens.size < room:
                self._current.write(tokens)
                return
            ends = np.flatnonzero(tokens[max(room - 1, 0) :] == self.eos_token_id)
            if not ends.size:
                self._current.write(tokens)
                return
            cut = max(room - 1, 0) + int(ends[0]) + 1
            self._current.write(tokens[:cut])
            self._close_current()
            tokens = tokens[cut:]

    def _close_current(self) -> None:
        meta = self._current.close()
        self.closed.append((self._current.path.name, meta))
        self._current = None

    def close(self) -> list[tuple[str, ShardMeta]]:
        """Close the open shard (if it has tokens); returns ``(file name, sidecar)`` of every shard."""
        if self._current is not None:
            if self._current.num_tokens:
                self._close_current()
            else:
                self._current.abort()
                self._current = None
        return self.closed

    def abort(self) -> None:
        """Drop the open shard; closed ones stay."""
        if self._current is not None:
            self._current.abort()
            self._current = None
