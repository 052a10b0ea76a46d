"""The steps ``prepare`` is made of: worker count, input sampling, the tokenizer, counting, publishing
the output, and the closing report."""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
from tokenizers import Tokenizer

from olmo2_lit.errors import DataError
from olmo2_lit.ngram import MAX_PERIOD, MIN_PERIOD, MIN_REPEATS
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.prepare.documents import DocumentReader, InputFile
from olmo2_lit.prepare.encode import TaskResult
from olmo2_lit.prepare.output import publish
from olmo2_lit.prepare.summary import PrepareSummary
from olmo2_lit.prepare.writer import RollingShardWriter, atomic_write_text
from olmo2_lit.shard_format.layout import MANIFEST, TOKENIZER_FILE
from olmo2_lit.shard_format.tokenizer import load_tokenizer

_COPY_BLOCK_TOKENS = 4 << 20


def default_workers() -> int:
    cpus = os.cpu_count() or 1
    return 1 if cpus <= 2 else cpus


def check_counts(s: PrepareSummary, inputs: list[str], files: int, val_fraction: float) -> None:
    """No tokens at all is an error; an empty validation split is a warning with the numbers."""
    if s.train_tokens + s.val_tokens == 0:
        raise DataError(
            f"{inputs}: {files} input file(s), {s.input_bytes:,} bytes, gave no documents "
            f"({s.empty_documents:,} empty, {s.filtered_documents:,} filtered); check paths and text_field"
        )
    if val_fraction > 0 and s.val_tokens == 0:
        warnings.warn(
            f"prepare: the validation split is empty: val_fraction {val_fraction} of {s.documents:,} "
            f"documents is {val_fraction * s.documents:.2f} expected; raise val_fraction or add documents",
            stacklevel=3,
        )


def subsample(sources: list[InputFile], max_input_bytes: Optional[int], seed: int) -> list[InputFile]:
    """A seeded random subset of whole files, kept in input order, of about ``max_input_bytes``."""
    if max_input_bytes is None:
        return sources
    order = list(range(len(sources)))
    random.Random(seed).shuffle(order)
    chosen, total = [], 0
    for i in order:
        if total >= max_input_bytes:
            break
        chosen.append(i)
        total += sources[i].size
    return [sources[i] for i in sorted(chosen)]


def texts(
    sources: list[InputFile], *, text_field: str, encoding_errors: str, max_chars: int, seen: list[int]
) -> Iterator[str]:
    """The inputs' text, in order, up to ``max_chars``; ``seen[0]`` counts what was yielded."""
    for source in sources:
        for piece in DocumentReader(source, text_field=text_field, encoding_errors=encoding_errors):
            yield piece.text
            seen[0] += len(piece.text)
            if seen[0] >= max_chars:
                return


def get_tokenizer(
    path: Optional[str],
    sources: list[InputFile],
    *,
    vocab_size: Optional[int],
    eos_token: str,
    text_field: str,
    encoding_errors: str,
    bpe_train_bytes: int,
    log: Callable,
) -> Tokenizer:
    if path is not None:
        return load_tokenizer(path)
    vocab_size = vocab_size or 8192
    started, seen = time.perf_counter(), [0]
    tok = train_bpe(
        texts(
            sources,
            text_field=text_field,
            encoding_errors=encoding_errors,
            max_chars=bpe_train_bytes,
            seen=seen,
        ),
        vocab_size=vocab_size,
        eos_token=eos_token,
    )
    log(
        f"trained a byte-level BPE ({tok.get_vocab_size():,} tokens, target {vocab_size:,}) on "
        f"{seen[0] / 1e6:.1f} M characters of the inputs in {time.perf_counter() - started:.1f} s"
    )
    return tok


def absorb(result: TaskResult, writers: dict[str, RollingShardWriter], counts: TaskResult) -> None:
    """Append a task's token files to the shard writers, then delete them."""
    for split, path in (("train", result.train_path), ("val", result.val_path)):
        writer = writers[split]
        with open(path, "rb") as f:
            while block := f.read(_COPY_BLOCK_TOKENS * writer.dtype.itemsize):
                writer.write(np.frombuffer(block, dtype=writer.dtype))
        os.unlink(path)
    for name in (
        "train_documents",
        "val_documents",
        "filtered_documents",
        "filtered_tokens",
        "empty_documents",
        "bytes_read",
    ):
        setattr(counts, name, getattr(counts, name) + getattr(result, name))


def publish_run(staging: Path, out: Path, summary: PrepareSummary, ours: set[Path], **settings) -> None:
    """Move the finished shards into ``out`` (replacing only our own files) and write the manifest last."""
    publish(staging, out, ours)
    manifest = {
        "format": "olmo2_lit.prepared/1",
        "tokenizer": TOKENIZER_FILE,
        **asdict(summary),
        "ngram_rule": {"min_period": MIN_PERIOD, "max_period": MAX_PERIOD, "min_repeats": MIN_REPEATS},
        **settings,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def report(s: PrepareSummary, ngram_filter: bool, wall: float, log: Callable) -> None:
    log(
        f"prepare: {s.documents:,} documents -> {s.train_tokens:,} train tokens "
        f"in {len(s.train_shards)} shard(s), "
        f"{s.val_tokens:,} val tokens in {len(s.val_shards)} shard(s) ({s.dtype}, vocab {s.vocab_size:,})"
    )
    if ngram_filter:
        total = s.documents + s.filtered_documents
        log(
            f"n-gram filter (>= {MIN_REPEATS} repeats of a {MIN_PERIOD}-{MAX_PERIOD} token n-gram): removed "
            f"{s.filtered_documents:,} of {total:,} documents "
            f"({100 * s.filtered_documents / max(total, 1):.2f}%), "
            f"{s.filtered_tokens:,} tokens"
        )
    if s.empty_documents:
        log(f"skipped {s.empty_documents:,} empty documents")
    log(
        f"tokenized at {s.tokens_per_second:,.0f} tokens/s ({s.seconds:.1f} s; {wall:.1f} s in all) "
        f"-> {s.output_dir}"
    )
