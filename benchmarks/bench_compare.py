"""How long ``olmo2-lit compare`` takes over 30 runs x 10,000 logged steps (target: < 15 s on 2 cores).

    python benchmarks/bench_compare.py [--runs 30] [--steps 10000] [--rounds 3]

Synthesizes a sweep layout (10 variants x 3 seeds) of event files written with TensorBoard's own writer
(``EventFileWriter``, one event per scalar as Lightning's logger writes them) with 8 scalars per step:
train/ce_loss, train/z_loss, optim/grad_norm, optim/lr, throughput/tokens_seen, throughput/tokens_per_sec,
throughput/mfu, epoch. The writer is slow (pure-Python CRC, ~15 s per run on a busy machine), so 3
distinct seeds are written and copied for every variant; reading costs the same. The files are kept in
``--data`` and reused. Then runs the whole command (a fresh process: imports, the data server, the table,
spike counts under both rules and the two default plots) ``--rounds`` times and prints wall time and the
CPU time of the command and its children (the data server), with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TAGS = ["train/ce_loss", "train/z_loss", "optim/grad_norm", "optim/lr", "throughput/tokens_seen",
        "throughput/tokens_per_sec", "throughput/mfu", "epoch"]  # fmt: skip


def write_run(run_dir: Path, steps: int, seed: int) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    rng = np.random.default_rng(seed)
    s = np.arange(steps)
    values = np.stack(
        [3 + 5 / np.sqrt(s + 1) + 0.05 * rng.standard_normal(steps), 1e-4 * np.ones(steps),
         0.5 + 0.1 * rng.standard_normal(steps) ** 2, 3e-3 * np.minimum(1, s / 1000), 4096.0 * (s + 1),
         4000 + 100 * rng.standard_normal(steps), 0.4 + 0.01 * rng.standard_normal(steps), np.zeros(steps)],
        axis=1,
    )  # fmt: skip
    writer = EventFileWriter(str(run_dir))
    for step in range(steps):
        for i, tag in enumerate(TAGS):
            value = Summary.Value(tag=tag, simple_value=float(values[step, i]))
            writer.add_event(Event(step=step, wall_time=1.8e9 + step, summary=Summary(value=[value])))
    writer.close()


def synthesize(data: Path, runs: int, steps: int) -> Path:
    root = data / f"sweep_{runs}x{steps}"
    if (root / ".complete").exists():
        return root
    seeds = 3
    for seed in range(seeds):
        write_run(data / f"seed{seed}_{steps}", steps, seed)
    for i in range(runs):
        target = root / f"v{i // seeds}" / f"seed{i % seeds}" / "tb"
        shutil.copytree(data / f"seed{i % seeds}_{steps}", target, dirs_exist_ok=True)
    (root / ".complete").touch()
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "olmo2_bench_compare"))
    args = parser.parse_args()
    start = time.time()
    root = synthesize(Path(args.data), args.runs, args.steps)
    print(
        f"{args.runs} runs x {args.steps} steps x {len(TAGS)} scalars in {root} ({time.time() - start:.0f} s)"
    )
    walls, cpus = [], []
    for _ in range(args.rounds):
        out = Path(tempfile.mkdtemp(prefix="bench_compare_"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load, t0 = os.getloadavg()[0], time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "olmo2_lit",
            "compare",
            str(root),
            "--out",
            str(out),
            "--at",
            "[5000]",
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        shutil.rmtree(out)
        print(f"compare: {walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU (load average {load:.1f})", flush=True)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"median of {args.rounds}: {wall:.1f} s wall, {cpu:.1f} s CPU on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
