"""Shared pieces of the bad-input suite: tiny shards, a tiny fit command, an in-process ``olmo2-lit``
runner and a content snapshot of a directory tree."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from olmo2_lit.cli import main

VOCAB = 256


def tiny_fit(root: Path, train: Path, *extra: str, max_steps: int = 1) -> list[str]:
    """``olmo2-lit fit`` arguments for a 1-layer model on ``train`` (shards of uint16 ids < 256)."""
    return [
        "fit",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--trainer.max_steps={max_steps}",
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
        f"--trainer.logger.init_args.save_dir={root / 'runs'}",
        "--model.config.d_model=16",
        "--model.config.n_layers=1",
        "--model.config.n_heads=2",
        "--model.config.mlp_hidden=32",
        f"--data.vocab_size={VOCAB}",
        "--data.dtype=uint16",
        "--data.sequence_length=32",
        "--data.global_batch_size=4",
        "--data.micro_batch_size=2",
        f"--data.train_sources={json.dumps([{'paths': [str(train)]}])}",
        f"--checkpoint.dirpath={root / 'ckpt'}",
        *extra,
    ]


def write_ids(path: Path, ids, dtype="uint16") -> Path:
    """A raw shard (no sidecar), as OLMo's own files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(ids, dtype=dtype).tofile(path)
    return path


@pytest.fixture
def shards(tmp_path) -> Path:
    """A directory with two good raw uint16 shards of 2048 ids < 256."""
    rng = np.random.default_rng(0)
    for i in range(2):
        write_ids(tmp_path / "shards" / f"part-{i}.npy", rng.integers(0, VOCAB, 2048))
    return tmp_path / "shards"


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cli(capsys):
    """Run ``olmo2-lit`` in this process: returns (exit status, stdout + stderr)."""

    def run(argv: list[str]) -> tuple[int, str]:
        # Lightning's log handlers keep the (since closed) stream of the test that imported it
        loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
        for handler in (h for lg in loggers for h in getattr(lg, "handlers", [])):
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def assert_short_error(code: int, output: str, *culprits: str) -> None:
    """A user error: exit status 2, no traceback, and the message names every culprit."""
    assert code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for culprit in culprits:
        assert culprit in output, f"{culprit!r} not in:\n{output[-3000:]}"
