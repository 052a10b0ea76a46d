"""A callback for the SLURM test: the process signals itself once, mid-step, like SLURM's --signal."""

import os
import signal

from lightning.pytorch import Callback


class SignalAtStep(Callback):
    """Send ``SIGUSR1`` to this process after the first micro-batch of the step after ``step`` steps,
    i.e. mid-step when gradients are accumulated (the first batch end seen at ``step`` completes a step)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.seen = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self.seen += 1
            if self.seen == 2:
                os.kill(os.getpid(), signal.SIGUSR1)
