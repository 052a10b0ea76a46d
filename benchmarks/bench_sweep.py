"""What ``olmo2-lit sweep`` adds beyond its runs (target: < 2 s per run).

    python benchmarks/bench_sweep.py [--runs 4] [--steps 2]

Sweeps a tiny config (tests/research/research_helpers.py's, on synthetic shards) over ``--runs`` cells
(2 variants x runs/2 seeds), one at a time, and compares the sweep's wall time with the sum of its runs'
own wall times (each fit subprocess, timed by the sweep from start to exit, in ``sweep.json``). The
difference is the sweep's own cost: its start-up, resolving every run's config (``--print_config``
parsed in process), the manifest writes and the bookkeeping between runs. Also prints the sweep
process's own CPU time (without its fits), which a busy machine does not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "research"), str(ROOT / "tests" / "training")]

from research_helpers import tiny_base  # noqa: E402
from training_helpers import make_shards  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="cells: 2 variants x runs/2 seeds")
    parser.add_argument("--steps", type=int, default=2, help="max_steps of each tiny run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    (work / "shards").mkdir()
    tiny_base(work / "base.yaml", make_shards(work / "shards"), max_steps=args.steps)
    seeds = list(range(max(1, args.runs // 2)))
    (work / "grid.yaml").write_text(
        f"base: [base.yaml]\nseeds: {seeds}\nvariants:\n  a: []\n  b: [{{model.config.qk_norm: false}}]\n"
    )
    load, start = os.getloadavg()[0], time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "olmo2_lit",
        "sweep",
        "--grid",
        "grid.yaml",
        "--out",
        "out",
        "--threads",
        "1",
    ]
    proc = subprocess.run(command, cwd=work, check=True, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    own_cpu = float(re.search(r"the sweep's own CPU time ([\d.]+) s", proc.stdout).group(1))
    runs = json.loads((work / "out" / "sweep.json").read_text())["runs"]
    own = sum(r["seconds"] for r in runs)
    per_run = (wall - own) / len(runs)
    print(f"{len(runs)} runs: sweep {wall:.1f} s wall, runs {own:.1f} s, overhead {per_run:.2f} s per run")
    print(f"the sweep process's own CPU time: {own_cpu:.1f} s, {own_cpu / len(runs):.2f} s per run")
    print(f"(load average {load:.1f} at start; files in {work})")


if __name__ == "__main__":
    main()
