"""A test-only callback: pause mid-accumulation at one step until the test has sent its signal."""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch import Callback


class PauseAt(Callback):
    """After the first micro-batch of optimizer step ``step`` (0-based), touch ``marker`` and wait until
    the test deletes it (at most ``timeout`` s), so a signal arrives between two micro-batches of a step.

    Args:
        step: the optimizer step to pause in.
        marker: the file to create, and whose removal resumes the run.
        timeout: seconds to wait at most (a hang guard for a test that died, not a speed requirement).
    """

    def __init__(self, *, step: int, marker: str, timeout: float = 600.0) -> None:
        self.step, self.marker, self.timeout = step, Path(marker), timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        accumulate = trainer.accumulate_grad_batches
        if trainer.global_step == self.step and batch_idx % accumulate == 0 and accumulate > 1:
            self.marker.touch()
            deadline = time.monotonic() + self.timeout
            while self.marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
