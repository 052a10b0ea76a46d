"""A test-only callback for the SLURM tests: wait mid-step until SLURM's signal has arrived."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lightning.pytorch import Callback

SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class WaitForSignal(Callback):
    """After the first micro-batch of optimizer step ``step`` (0-based), touch ``<marker>.<rank>`` and wait
    until SIGUSR1 or SIGTERM arrives (at most ``timeout`` s), then go on: the signal lands between two
    micro-batches of the step, wherever SLURM is in delivering it. The handlers already installed (the run's
    own) still receive the signal first; only the first run of a job waits (``SLURM_RESTART_COUNT``
    unset or 0), so a requeued job runs straight through.

    Args:
        step: the optimizer step to wait in.
        marker: the file to touch, with the global rank appended, once this rank waits.
        timeout: seconds to wait at most (a hang guard for a test that died, not a speed requirement).
    """

    def __init__(self, *, step: int, marker: str, timeout: float = 600.0) -> None:
        self.step, self.marker, self.timeout = step, marker, timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step or batch_idx % trainer.accumulate_grad_batches != 0:
            return
        if int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:
            return
        arrived = []
        previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

        def chained(signum, frame):
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            arrived.append(signum)

        for signum in SIGNALS:
            signal.signal(signum, chained)
        Path(f"{self.marker}.{trainer.global_rank}").touch()
        deadline = time.monotonic() + self.timeout
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.05)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
