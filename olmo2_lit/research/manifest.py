"""What a sweep records: ``<run>/sweep_run.json`` beside each run and ``<out>/sweep.json`` over all of them.

A run's own record is the source of truth for resuming (it survives a lost or rewritten manifest); the
manifest is the grid, every run's resolved config and its status, rewritten atomically on every change.
Statuses: ``pending``, ``running``, ``done``, ``failed``, ``interrupted``, ``submitted`` (SLURM).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from olmo2_lit.atomic import atomic_file

RUN_RECORD = "sweep_run.json"
MANIFEST = "sweep.json"


def read_run_record(run_dir: Path) -> Optional[dict[str, Any]]:
    """The run's ``sweep_run.json``, or None if it has none (never started)."""
    path = run_dir / RUN_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # written atomically, so only a hand edit gets here: treat as never started


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")


def mark(run_dir: str, status: str, returncode: Optional[int] = None) -> None:
    """Set a run's status in its record, keeping the rest (``python -m olmo2_lit.research.manifest DIR
    STATUS [RC]``: the SLURM array script marks its run this way)."""
    path = Path(run_dir) / RUN_RECORD
    record = read_run_record(Path(run_dir)) or {}
    record.update(status=status, returncode=returncode, finished=time.time())
    write_json(path, record)


class Manifest:
    """``<out>/sweep.json``: the grid, and per run its variant, seed, directory, command, resolved config,
    status, exit status and wall time. Thread-safe; every update rewrites the file atomically and, for
    a run, its ``sweep_run.json``."""

    def __init__(self, out: Path, grid: dict[str, Any], runs: list[dict[str, Any]]):
        self.path = out / MANIFEST
        self.grid = grid
        self.runs = {run["key"]: run for run in runs}
        self._lock = threading.Lock()
        self._write()

    def update(self, key: str, **fields: Any) -> None:
        with self._lock:
            run = self.runs[key]
            run.update(fields)
            write_json(Path(run["dir"]) / RUN_RECORD, run)
            self._write()

    def _write(self) -> None:
        counts: dict[str, int] = {}
        for run in self.runs.values():
            counts[run["status"]] = counts.get(run["status"], 0) + 1
        write_json(self.path, {"grid": self.grid, "counts": counts, "runs": list(self.runs.values())})


if __name__ == "__main__":
    mark(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
