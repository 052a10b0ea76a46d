"""A callback that makes the first training batch of a fit slow by a known time, as compilation would."""

import time

from lightning.pytorch import Callback


class SlowFirstStep(Callback):
    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            time.sleep(self.seconds)
