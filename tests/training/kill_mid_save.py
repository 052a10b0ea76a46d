"""A callback for the atomic-save test: SIGKILL every rank in the middle of a sharded checkpoint save."""

import os
import signal

import lightning.pytorch.strategies.model_parallel as model_parallel
from lightning.pytorch import Callback


class KillMidSave(Callback):
    """Count the torch distributed checkpoint saves of this process; right after the shards of save number
    ``at_save`` are written (``.metadata`` and ``__<rank>_0.distcp``), before Lightning's ``meta.pt`` and
    before the save is published, each rank kills itself with SIGKILL, as a cluster ending the job would."""

    def __init__(self, at_save: int) -> None:
        self.at_save = at_save
        self.count = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        write = model_parallel._distributed_checkpoint_save

        def write_then_maybe_die(state, path):
            write(state, path)
            self.count += 1
            if self.count == self.at_save:
                os.kill(os.getpid(), signal.SIGKILL)

        model_parallel._distributed_checkpoint_save = write_then_maybe_die
