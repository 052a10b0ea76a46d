"""OLMo 2's stability study at small scale (docs/study.md): sweep the grid, compare, write the table, and
rebuild the docs page's results from that table.

    python experiments/study/run_study.py                  # sweep (resumable) + compare + page
    python experiments/study/run_study.py --skip_sweep     # compare the runs already there + page

Writes ``experiments/study/results/`` (compare.md, compare.csv, spikes.csv, plots, run.json) and replaces
the part of docs/study.md between its ``study-table`` markers with compare.md, so the page cannot disagree
with the run (tests/research/test_study_page.py checks they agree).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "experiments" / "study" / "grid.yaml"
RESULTS = ROOT / "experiments" / "study" / "results"
PAGE = ROOT / "docs" / "study.md"
IMAGES = ROOT / "docs" / "img" / "study"
BEGIN, END = (
    "<!-- study-table:begin (written by experiments/study/run_study.py) -->",
    "<!-- study-table:end -->",
)
#: the comparison: columns at these steps and the end; the paper's window scaled to the run's length
COMPARE = ["--at", "[100, 250]", "--paper_window", "200", "--plots", "[train/ce_loss, optim/grad_norm]"]
COMPARE_TAGS = ["--tags", "[train/ce_loss, optim/grad_norm, val/ce_loss]"]


def table_of(compare_md: str) -> str:
    """compare.md without its title and image lines: the part the page shows."""
    lines = [line for line in compare_md.splitlines() if not line.startswith(("# compare", "!["))]
    return "\n".join(lines).strip() + "\n"


def build_page(page: str, table: str) -> str:
    """``page`` with the text between the markers replaced by ``table``."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(page):
        raise ValueError(f"{PAGE}: the markers {BEGIN!r} ... {END!r} are missing")
    return pattern.sub(lambda _: f"{BEGIN}\n{table}{END}", page)


def _olmo2_lit(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "olmo2_lit", *args], cwd=ROOT).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/study", help="the sweep's directory")
    parser.add_argument(
        "--parallel", type=int, default=2, help="runs at once (one torch thread each on 2 cores)"
    )
    parser.add_argument("--skip_sweep", action="store_true", help="only compare the runs already in --out")
    args = parser.parse_args()
    start, load = time.time(), os.getloadavg()
    sweep_rc = None
    if not args.skip_sweep:
        sweep_rc = _olmo2_lit(
            "sweep", "--grid", str(GRID), "--out", args.out, "--parallel", str(args.parallel)
        )
    sweep_s = time.time() - start
    rc = _olmo2_lit("compare", args.out, "--out", str(RESULTS), *COMPARE_TAGS, *COMPARE)
    if rc != 0:
        sys.exit(rc)
    IMAGES.mkdir(parents=True, exist_ok=True)
    for png in RESULTS.glob("*.png"):
        shutil.copyfile(png, IMAGES / png.name)
    PAGE.write_text(build_page(PAGE.read_text(), table_of((RESULTS / "compare.md").read_text())))
    record = {
        "sweep_exit_status": sweep_rc,
        "sweep_wall_s": round(sweep_s, 1),
        "load_average_at_start": [round(x, 2) for x in load],
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start)),
    }
    (RESULTS / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"study: table in {RESULTS / 'compare.md'}, page {PAGE}; {record}")


if __name__ == "__main__":
    main()
