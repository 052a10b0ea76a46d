"""Finding input files and streaming documents out of them, for ``prepare``.

Formats:
- JSONL (``.jsonl``, ``.ndjson``, ``.json``; Dolma writes ``*.json.gz``): one JSON object per line, the
  document in a ``text`` field.
- plain text (anything else): the whole file is one document, read in ~1 MiB pieces cut after a
  newline, so a large file never sits in memory.
- either one compressed with gzip (``.gz``) or zstd (``.zst``, ``.zstd``).
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Optional

from olmo2_lit.errors import ConfigError, DataError
from olmo2_lit.prepare.corpus import STDLIB_CORPUS, stdlib_files, stdlib_root

#: How undecodable bytes are handled: "strict" (an error naming the file and byte) or "replace" (U+FFFD).
EncodingErrors = Literal["strict", "replace"]

_COMPRESSION = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ".py"}


@dataclass(frozen=True)
class InputFile:
    """One input file, or a line-aligned byte range of a large uncompressed JSONL file.

    Attributes:
        path: the file.
        key: a machine-independent name (relative to the input it came from); with the document's id it
            decides the train/val split, so the split does not depend on where the data lives.
        kind: ``"jsonl"`` or ``"text"``.
        compression: ``"gzip"``, ``"zstd"`` or None.
        size: bytes to read (on disk; the range length for a range).
        start: first byte of the range.
        stop: end of the range (exclusive), or None for the whole file.
    """

    path: str
    key: str
    kind: Literal["jsonl", "text"]
    compression: Optional[str]
    size: int
    start: int = 0
    stop: Optional[int] = None


@dataclass(frozen=True)
class Piece:
    """Text of one document, or a piece of a long one; ``last`` marks the document's end."""

    doc_id: int
    text: str
    last: bool


def _describe(path: Path, key: str) -> InputFile:
    suffixes = [s.lower() for s in path.suffixes]
    compression = _COMPRESSION.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    kind = "jsonl" if suffixes and suffixes[-1] in _JSONL_SUFFIXES else "text"
    return InputFile(path=str(path), key=key, kind=kind, compression=compression, size=path.stat().st_size)


def _wanted_in_directory(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in _JSONL_SUFFIXES | _TEXT_SUFFIXES


def resolve_inputs(inputs: list[str]) -> list[InputFile]:
    """Expand ``inputs`` (files, directories, glob patterns, or the embedded corpus name) in a fixed order.

    A directory contributes, recursively and sorted, its non-hidden files with a text or JSONL
    suffix (optionally compressed). A file named explicitly is always read.

    Raises:
        FileNotFoundError: a missing path, or a directory or pattern with no usable file.
    """
    found: list[InputFile] = []
    for entry in inputs:
        if entry == STDLIB_CORPUS:
            root = stdlib_root()
            found += [_describe(p, str(p.relative_to(root))) for p in stdlib_files()]
        elif any(c in entry for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(entry, recursive=True) if Path(p).is_file())
            if not matches:
                raise FileNotFoundError(f"{entry}: input pattern matches no file")
            found += [_describe(p, p.name) for p in matches]
        elif Path(entry).is_dir():
            root = Path(entry)
            if (root / "manifest.json").is_file() and (root / "train").is_dir():
                raise ConfigError(
                    f"{entry}: the output of olmo2-lit prepare (manifest.json, train/), not text to "
                    f'tokenize; train on it with --data.train_sources \'[{{"paths": ["{root / "train"}"]}}]\''
                )
            matches = sorted(
                p
                for p in root.rglob("*")
                if p.is_file()
                and _wanted_in_directory(p)
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            if not matches:
                raise FileNotFoundError(f"{entry}: input directory holds no text or JSONL files")
            found += [_describe(p, str(p.relative_to(root))) for p in matches]
        elif Path(entry).is_file():
            found.append(_describe(Path(entry), Path(entry).name))
        else:
            raise FileNotFoundError(f"{entry}: input not found")
    return found


def split_ranges(f: InputFile, *, target_bytes: int) -> list[InputFile]:
    """Cut a large uncompressed JSONL file into byte ranges of ~``target_bytes`` for parallel workers."""
    if f.kind != "jsonl" or f.compression or f.size <= target_bytes:
        return [f]
    bounds = list(range(0, f.size, target_bytes)) + [f.size]
    return [dataclasses.replace(f, start=a, stop=b, size=b - a) for a, b in zip(bounds[:-1], bounds[1:])]


class DocumentReader:
    """Streams :class:`Piece` s out of one :class:`InputFile`; ``bytes_read`` tracks progress on disk.

    Args:
        source: the file or range.
        text_field: the JSONL field holding the document.
        piece_chars: characters per piece of a plain-text document.
        encoding_errors: "strict": bytes that are not UTF-8 are an error naming the file and byte
            offset; "replace": they become U+FFFD.
    """

    def __init__(
        self,
        source: InputFile,
        *,
        text_field: str = "text",
        piece_chars: int = 1 << 20,
        encoding_errors: EncodingErrors = "strict",
    ) -> None:
        self.source = source
        self.text_field = text_field
        self.piece_chars = piece_chars
        self.encoding_errors = encoding_errors
        self._raw: Optional[BinaryIO] = None

    @property
    def bytes_read(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for a compressed file)."""
        if self._raw is None or self._raw.closed:
            return 0
        return min(self._raw.tell() - self.source.start, self.source.size)

    def __iter__(self) -> Iterator[Piece]:
        with open(self.source.path, "rb") as raw:
            self._raw = raw
            stream = self._decompressed(raw)
            if self.source.kind == "jsonl":
                yield from self._jsonl(stream)
            else:
                yield from self._text(stream)

    def _decompressed(self, raw: BinaryIO) -> BinaryIO:
        if self.source.compression == "gzip":
            return gzip.GzipFile(fileobj=raw, mode="rb")
        if self.source.compression == "zstd":
            import zstandard  # only needed for .zst inputs

            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
        return raw

    def _jsonl(self, stream: BinaryIO) -> Iterator[Piece]:
        offset = self._seek_to_range(stream)
        for line_number, line in enumerate(stream, start=1):
            if self.source.stop is not None and offset >= self.source.stop:
                return
            line_offset, offset = offset, offset + len(line)
            if not line.strip():
                continue
            where = (
                f"{self.source.path}:{line_number}"
                if self.source.start == 0
                else f"{self.source.path} (line at byte {line_offset})"
            )
            try:
                record = json.loads(line.decode("utf-8", errors=self.encoding_errors))
            except UnicodeDecodeError as e:
                raise self._not_utf8(line_offset + e.start, line[e.start : e.start + 4]) from None
            except ValueError as e:
                raise DataError(f"{where}: invalid JSON ({e})") from e
            text = record.get(self.text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise DataError(f"{where}: no string field {self.text_field!r} (set text_field)")
            yield Piece(doc_id=line_offset, text=text, last=True)

    def _seek_to_range(self, stream: BinaryIO) -> int:
        """Move to the first line that starts inside the range; returns its byte offset."""
        start = self.source.start
        if start == 0:
            return 0
        stream.seek(start - 1)
        if stream.read(1) != b"\n":
            start += len(stream.readline())  # we landed inside a line: it belongs to the previous range
        return start

    def _text(self, stream: BinaryIO) -> Iterator[Piece]:
        reader = io.TextIOWrapper(stream, encoding="utf-8", errors=self.encoding_errors, newline="")
        try:
            piece = reader.read(self.piece_chars)
            while piece:
                if not piece.endswith("\n"):
                    piece += reader.readline(
                        self.piece_chars
                    )  # end the piece after a newline when one is near
                following = reader.read(self.piece_chars)
                yield Piece(doc_id=0, text=piece, last=not following)
                piece = following
        except UnicodeDecodeError:
            raise self._not_utf8(*self._first_invalid_utf8()) from None
        reader.detach()

    def _first_invalid_utf8(self) -> tuple[int, bytes]:
        """Byte offset (in the decompressed text) and bytes of the first invalid UTF-8 sequence."""
        offset, carry = 0, b""
        with open(self.source.path, "rb") as raw:
            stream = self._decompressed(raw)
            while block := stream.read(1 << 20):
                data = carry + block
                try:
                    data.decode("utf-8")
                    offset, carry = offset + len(data), b""
                except UnicodeDecodeError as e:
                    if e.reason == "unexpected end of data" and e.start >= len(data) - 3:
                        offset, carry = offset + e.start, data[e.start :]  # a character cut by the block
                        continue
                    return offset + e.start, data[e.start : e.start + 4]
        return offset, carry[:4]

    def _not_utf8(self, offset: int, sample: bytes) -> DataError:
        where = "of the decompressed text " if self.source.compression else ""
        return DataError(
            f"{self.source.path}: not UTF-8 at byte {offset:,} {where}(bytes {sample.hex(' ')}); convert the "
            "file to UTF-8 (e.g. iconv -f latin1 -t utf-8), or pass --encoding_errors replace to turn such "
            "bytes into U+FFFD"
        )
