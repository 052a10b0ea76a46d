"""What the Diagnostics callback costs a real quickstart run, at interval 1 and interval 100.

    python benchmarks/bench_diagnostics.py [--steps 120] [--rounds 2]

Runs ``olmo2-lit fit --config experiments/quickstart.yaml`` (validation off, ``max_steps`` shortened)
without the callback, with ``experiments/stability/diagnostics.yaml`` (interval 100) and with the same
at interval 1, in interleaved rounds (none, 100, 1, none, 100, 1, ...), one torch thread each. Each run
measures the CPU time of its own process (every thread: the training loop, the TensorBoard writer)
between the end of step ``--skip`` and the last step, through :class:`StepCPUTime` below, so start-up,
data preparation and the final checkpoint are left out and load from other processes on the machine
does not count. Prints CPU ms per step of each and the overheads with their spread over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]


class StepCPUTime(Callback):
    """Writes the process CPU seconds per optimizer step, from the end of step ``skip`` to the last one."""

    def __init__(self, *, out: str, skip: int = 10) -> None:
        self.out, self.skip = out, skip
        self.start: tuple[int, float] | None = None
        self.end: tuple[int, float] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = (trainer.global_step, time.process_time())
        if trainer.global_step == self.skip and self.start is None:
            self.start = now
        self.end = now

    def on_train_end(self, trainer, pl_module) -> None:
        steps = self.end[0] - self.start[0]
        Path(self.out).write_text(json.dumps({"steps": steps, "cpu_s": self.end[1] - self.start[1]}))


def run_fit(interval: int | None, steps: int, skip: int, work: Path) -> float:
    """CPU seconds per step of one quickstart run with Diagnostics(interval) (None: without it)."""
    result = work / "result.json"
    layer = work / "bench.yaml"
    callbacks = [
        f"    - class_path: bench_diagnostics.StepCPUTime\n      init_args: {{out: {result}, skip: {skip}}}\n"
    ]
    if interval is not None:
        callbacks.append(
            "    - class_path: olmo2_lit.callbacks.diagnostics.Diagnostics\n"
            f"      init_args: {{interval: {interval}, attention_logits: true}}\n"
        )
    layer.write_text("trainer:\n  callbacks+:\n" + "".join(callbacks))
    cmd = [
        sys.executable, "-m", "olmo2_lit.cli", "fit", "--config", "experiments/quickstart.yaml",
        "--config", str(layer), "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(work),
        "--trainer.logger.init_args.save_dir", str(work), "--checkpoint.every_n_train_steps", str(10 * steps),
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = json.loads(result.read_text())
    return data["cpu_s"] / data["steps"]


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--steps", type=int, default=120, help="max_steps of each run (>= 100 + skip)")
    parser.add_argument("--skip", type=int, default=10, help="steps left out at the start of each run")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    configs: dict[str, int | None] = {"none": None, "interval 100": 100, "interval 1": 1}
    per_step: dict[str, list[float]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, interval in configs.items():
            with tempfile.TemporaryDirectory() as tmp:
                per_step[name].append(run_fit(interval, args.steps, args.skip, Path(tmp)))
            print(f"round {r}: {name:12s} {per_step[name][-1] * 1e3:8.1f} ms CPU per step", flush=True)
    base = statistics.median(per_step["none"])
    print(f"\nquickstart, steps {args.skip}-{args.steps}, 1 thread, median of {args.rounds} rounds:")
    print(f"  no diagnostics: {base * 1e3:.1f} ms CPU per step")
    for name in ("interval 100", "interval 1"):
        ratios = sorted(t / b - 1 for t, b in zip(per_step[name], per_step["none"]))
        med = statistics.median(per_step[name])
        print(
            f"  {name:12s}: {med * 1e3:.1f} ms CPU per step, overhead {100 * (med / base - 1):+.1f}% "
            f"(rounds: {100 * ratios[0]:+.1f}% to {100 * ratios[-1]:+.1f}%)"
        )


if __name__ == "__main__":
    main()
