"""A progress bar for iteration-based training: optimizer step / max_steps, loss, tokens/s, ETA."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, counting optimizer steps toward ``trainer.max_steps`` instead of
    micro-batches of a data epoch (which read ``Epoch 0/-2`` when training is bounded by steps).

    tqdm shows elapsed time and the ETA; the postfix shows the metrics logged with ``prog_bar=True``
    (``train/ce_loss``, ``throughput/tokens_per_sec``, ``val/ce_loss``). Validation bars are Lightning's.

    Args:
        refresh_rate: update the bar every this many optimizer steps.
    """

    def __init__(self, *, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        total = trainer.max_steps if trainer.max_steps > 0 else None
        self.train_progress_bar.reset(total=total)
        self.train_progress_bar.initial = self.train_progress_bar.n = trainer.global_step  # on resume
        self.train_progress_bar.set_description("step")

    def on_train_epoch_start(self, trainer: Trainer, *_: Any) -> None:
        pass  # one bar for the whole run, across data epochs

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bar = self.train_progress_bar
        if bar.n == trainer.global_step or trainer.global_step % self.refresh_rate:
            return
        bar.n = trainer.global_step
        bar.set_postfix(self.get_metrics(trainer, pl_module))
        bar.refresh()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pass  # not closed until the run ends

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
