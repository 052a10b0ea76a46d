"""The run behind docs/img/stability_tensorboard.png: the quickstart with the stability fragments on and two
injected gradient spikes, logged to TensorBoard.

    python benchmarks/stability_demo.py [--out runs/stability_demo] [--steps 250 265]

It runs ``olmo2-lit fit`` on ``experiments/quickstart.yaml`` layered with ``experiments/stability/``
``spike_monitor.yaml``, ``skip_step.yaml`` and ``lr_backoff.yaml`` as shipped, plus per-block
diagnostics every 5 steps, every metric logged every step, and the test probe
``tests/callbacks/stability_probes.py:ScaleGradsAt``, which multiplies every gradient by 1e3 at the given
optimizer steps (before the module measures the grad norm). Then look at it with
``tensorboard --logdir <out>`` (or render it: benchmarks/tensorboard_screenshot.js).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAGMENTS = ("spike_monitor.yaml", "skip_step.yaml", "lr_backoff.yaml")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "stability_demo", help="the run directory")
    p.add_argument("--steps", type=int, nargs="+", default=[250, 265], help="optimizer steps to spike")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    demo = args.out / "demo.yaml"
    demo.write_text(
        "trainer:\n"
        "  callbacks+:\n"
        "    - class_path: olmo2_lit.callbacks.diagnostics.Diagnostics\n"
        "      init_args: {interval: 5}\n"
        "    - class_path: stability_probes.ScaleGradsAt\n"
        f"      init_args: {{steps: {args.steps}, factor: 1000.0}}\n"
    )
    cmd = [sys.executable, "-m", "olmo2_lit.cli", "fit", "--config", "experiments/quickstart.yaml"]
    for name in FRAGMENTS:
        cmd += ["--config", f"experiments/stability/{name}"]
    cmd += ["--config", str(demo), "--trainer.log_every_n_steps", "1"]
    cmd += ["--trainer.default_root_dir", str(args.out), "--trainer.logger.init_args.save_dir", str(args.out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "callbacks"), str(ROOT)])}
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


if __name__ == "__main__":
    main()
