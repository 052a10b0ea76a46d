"""Small raw token shards, CLI runners (in process and in a subprocess) and a TensorBoard reader for the
training tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from olmo2_lit.lightning_cli import OLMo2CLI


def tiny_args(root: Path, shards: Path, *, max_steps: int, extra: tuple[str, ...] = ()) -> list[str]:
    """A tiny fit on CPU: 2 layers, 64-token instances, global batch 8 = micro 4 x accum 2."""
    return [
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
        "--trainer.max_steps",
        str(max_steps),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(root / "runs"),
        "--model.config.d_model",
        "32",
        "--model.config.n_layers",
        "2",
        "--model.config.n_heads",
        "4",
        "--model.config.mlp_hidden",
        "64",
        "--model.schedule",
        "olmo2_lit.train.schedules.CosineWithWarmup",
        "--model.schedule.warmup",
        "2",
        "--model.schedule.t_max",
        "20",
        "--data.vocab_size",
        "256",
        "--data.dtype",
        "uint16",
        "--data.sequence_length",
        "64",
        "--data.global_batch_size",
        "8",
        "--data.micro_batch_size",
        "4",
        "--data.train_sources",
        f'[{{"paths": ["{shards}"]}}]',
        "--checkpoint.every_n_train_steps",
        "3",
        "--checkpoint.dirpath",
        str(root / "ckpt"),
        *extra,
    ]


def fit(args: list[str]) -> OLMo2CLI:
    return OLMo2CLI(args=["fit", *args])


def fit_subprocess(
    args: list[str],
    cwd: Path,
    *,
    pythonpath: tuple[Path, ...] = (),
    check: bool = True,
    script: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """``python -m olmo2_lit fit ARGS`` in a fresh process, output captured: for multi-process runs (the
    launcher re-runs this same command for the other ranks), signals and kills. ``pythonpath`` goes in
    front of PYTHONPATH (test callbacks imported by class_path on every rank); ``check`` asserts success
    and shows the end of stderr otherwise; ``script`` runs ``python SCRIPT fit ARGS`` instead (e.g.
    ``cpu_deepspeed.py``), with ``env`` added to the environment; ``timeout`` in seconds."""
    environ = {**os.environ, **(env or {})}
    if pythonpath:
        environ["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), os.environ.get("PYTHONPATH", "")])
    entry = [str(script)] if script else ["-m", "olmo2_lit"]
    proc = subprocess.run(
        [sys.executable, *entry, "fit", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def scalars(root: Path, tag: str, *, logs: str = "runs") -> list[tuple[int, float]]:
    """(step, value) of a TensorBoard scalar under ``root/logs``, read with tensorboard's own reader, over
    all versions."""
    out = []
    # one reader per run directory (it reads all of that directory's event files)
    for run_dir in sorted({events.parent for events in (root / logs).rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(run_dir))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            out += [(e.step, e.value) for e in acc.Scalars(tag)]
    return sorted(out)


def make_shards(root: Path) -> Path:
    """Two raw uint16 shards of token ids with a learnable pattern (no sidecar, like OLMo's files)."""
    rng = np.random.default_rng(0)
    for i in range(2):
        base = rng.integers(0, 256, size=64)
        tokens = np.concatenate([np.roll(base, k) for k in range(64)])  # 4096 tokens
        tokens[rng.random(tokens.size) < 0.1] = rng.integers(0, 256)
        tokens.astype(np.uint16).tofile(root / f"part-{i}.npy")
    return root


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
