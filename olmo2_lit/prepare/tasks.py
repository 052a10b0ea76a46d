"""Splitting ``prepare``'s input into tasks and running them, in this process or in a worker pool."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from tokenizers import Tokenizer

from olmo2_lit.prepare.documents import InputFile, split_ranges
from olmo2_lit.prepare.encode import EncodeConfig, Task, TaskResult, encode_task


def plan_tasks(sources: list[InputFile], work: Path, *, workers: int) -> list[Task]:
    """Group files into tasks of about equal bytes; a large uncompressed JSONL file is split by range."""
    total = sum(s.size for s in sources)
    target = min(max(total // (4 * workers), 1 << 20), 64 << 20)  # >= 4 tasks per worker, each 1-64 MiB
    groups: list[list[InputFile]] = [[]]
    size = 0
    for piece in (r for s in sources for r in split_ranges(s, target_bytes=target)):
        if size >= target:
            groups.append([])
            size = 0
        groups[-1].append(piece)
        size += piece.size
    return [
        Task(
            index=i,
            sources=tuple(g),
            train_path=str(work / f"task-{i:06d}.train"),
            val_path=str(work / f"task-{i:06d}.val"),
        )
        for i, g in enumerate(groups)
        if g
    ]


def run_tasks(
    tasks: list[Task],
    config: EncodeConfig,
    tok: Tokenizer,
    *,
    workers: int,
    on_progress: Callable[[int], None],
) -> Iterator[TaskResult]:
    """Results in task order; at most 2 tasks per worker are in flight, which bounds memory and disk.

    ``workers <= 1`` runs here (the tokenizer then uses its own threads on each batch).
    ``on_progress(n)`` receives input bytes as they are consumed.
    """
    if workers <= 1:
        for task in tasks:
            yield encode_task(task, config, tok, on_progress)
        return
    # fork: spawn would re-import __main__ in every worker, and under `olmo2-lit` that imports torch and
    # Lightning (seconds each). The forked children get the tokenizer with parallelism off, set before
    # the fork so `tokenizers` does not warn about threads used by the parent.
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    progress = ctx.Value("q", 0)
    with _tokenizers_parallelism_off():
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(tok.to_str(), config, progress))
    with pool:
        pending, queue = deque(), iter(tasks)
        for task in itertools.islice(queue, 2 * workers):
            pending.append(pool.apply_async(_worker_task, (task,)))
        reported = 0
        while pending:
            while not pending[0].ready():
                pending[0].wait(0.2)
                on_progress(progress.value - reported)
                reported = progress.value
            result = pending.popleft().get()
            task = next(queue, None)
            if task is not None:
                pending.append(pool.apply_async(_worker_task, (task,)))
            yield result
        on_progress(progress.value - reported)


_WORKER: dict = {}


@contextlib.contextmanager
def _tokenizers_parallelism_off() -> Iterator[None]:
    """One process per core already: no tokenizer threads in the workers."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _init_worker(tokenizer_json: str, config: EncodeConfig, progress) -> None:
    _WORKER.update(tokenizer=Tokenizer.from_str(tokenizer_json), config=config, progress=progress)


def _worker_task(task: Task) -> TaskResult:
    def report(n: int) -> None:
        with _WORKER["progress"].get_lock():
            _WORKER["progress"].value += n

    return encode_task(task, _WORKER["config"], _WORKER["tokenizer"], report)
