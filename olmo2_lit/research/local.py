"""Run sweep cells on this machine as ``olmo2-lit fit`` subprocesses, N at once, threads divided.

SIGTERM or SIGINT to the sweep is passed to every running fit as SIGTERM: each finishes its optimizer
step, saves ``last.ckpt`` and exits (``callbacks/preemption.py``); no new run starts. The runs sit in
their own sessions, so a Ctrl-C in the terminal reaches them only through the sweep, once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from olmo2_lit.research.grid import Cell

LOG = "fit.log"
#: exit statuses of a fit stopped by a signal after saving last.ckpt (callbacks/preemption.py: 128 + signal)
PREEMPTED = (128 + signal.SIGTERM, 128 + signal.SIGUSR1, 128 + signal.SIGINT)


class LocalRunner:
    """Runs cells ``parallel`` at a time, each fit with ``threads`` torch threads (``OMP_NUM_THREADS``).

    ``on_update(key, **fields)`` is called when a run starts and ends (the manifest's ``update``).
    """

    def __init__(self, *, parallel: int, threads: int, on_update: Callable[..., None]):
        self.parallel, self.threads, self.on_update = parallel, threads, on_update
        self.stopping = False
        self._live: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self.failed: list[str] = []

    def run(self, cells: list[Cell], total: int) -> None:
        """Run ``cells`` (of ``total`` in the grid); returns when all ended or a signal stopped them."""
        previous = self._install_handlers()
        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                futures = [pool.submit(self._run_one, cell, total) for cell in cells]
                while not all(f.done() for f in futures):  # wake up for signals
                    time.sleep(0.2)
                for f in futures:
                    f.result()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _install_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _stop(self, signum, frame) -> None:
        print(
            f"sweep: {signal.Signals(signum).name}: stopping the running fits at their next step", flush=True
        )
        self.stopping = True
        with self._lock:
            for proc in self._live.values():
                proc.send_signal(signal.SIGTERM)

    def _run_one(self, cell: Cell, total: int) -> None:
        if self.stopping:
            return
        cell.run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        start = time.time()
        with open(cell.run_dir / LOG, "ab") as log, self._lock:
            if self.stopping:
                return
            proc = subprocess.Popen(
                [sys.executable, "-m", "olmo2_lit", "fit", *cell.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            self._live[cell.key] = proc
        self.on_update(cell.key, status="running", started=start, pid=proc.pid)
        print(f"sweep: {cell.key} started ({cell.run_dir})", flush=True)
        rc = proc.wait()
        with self._lock:
            del self._live[cell.key]
        seconds = round(time.time() - start, 2)
        status = "done" if rc == 0 else ("interrupted" if self.stopping or rc in PREEMPTED else "failed")
        self.on_update(cell.key, status=status, returncode=rc, seconds=seconds, pid=None)
        tail = "" if rc == 0 else f"; last lines of {cell.run_dir / LOG}:\n{_tail(cell.run_dir / LOG)}"
        print(f"sweep: {cell.key} {status} (exit {rc}, {seconds:.1f} s){tail}", flush=True)
        if status == "failed":
            self.failed.append(cell.key)


def _tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace").rstrip().splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def default_threads(parallel: int, cpus: Optional[int] = None) -> int:
    """The machine's cores divided among ``parallel`` runs (at least 1 each)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // parallel)
