"""Lightning's ModelCheckpoint, minus the steps a rollback discards."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from olmo2_lit.callbacks.step_callback import requested_restart


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (every argument is Lightning's) that saves nothing once a step callback has asked
    the run to restart from an earlier checkpoint (``Rollback``): the step that triggered it holds the
    weights being discarded, so neither a periodic file nor ``last.ckpt`` may record it."""

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if requested_restart(trainer) is None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if requested_restart(trainer) is None:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if requested_restart(trainer) is None:
            super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if requested_restart(trainer) is None:
            super().on_train_end(trainer, pl_module)
