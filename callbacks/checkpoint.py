"""Periodic checkpoints, plus the final state of a fit that reaches its end, whatever the interval."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (every option as documented there) that also saves the last step.

    Lightning saves every ``every_n_train_steps`` steps and, at the end, ``last.ckpt`` only if nothing
    was saved at all: ``max_steps: 5`` with a checkpoint every 2 steps ended with ``last.ckpt`` at
    step 4, and the fifth update was lost. Like OLMo-core (its checkpointer's ``post_train``), a fit
    that reaches ``trainer.max_steps`` (or ``trainer.max_epochs``) saves its final state as one more
    periodic checkpoint (``step{step:07d}.ckpt``, named as ``filename`` says) and as ``last.ckpt``,
    through the strategy's own save (sharded directories and atomic publishing included), unless that
    step was already saved on the interval.

    ``max_steps`` is saved in ``on_train_batch_end``, the hook periodic saves use, so the file resumes
    exactly like any periodic one (``--ckpt_path`` with a larger ``max_steps`` continues the run).
    A stop asked for by a callback (SLURM requeue, which saves its own ``hpc_ckpt``; early stopping;
    ``max_time``) or by a signal (``Preemption`` saves ``last.ckpt``) is not the end of the fit.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if 0 < trainer.max_steps <= trainer.global_step:  # the optimizer step that ends the fit
            self._save_final(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # `processed` counts this epoch already (Lightning's fit loop checks max_epochs on it)
        if 0 < (trainer.max_epochs or -1) <= trainer.fit_loop.epoch_progress.current.processed:
            self._save_final(trainer)

    def _save_final(self, trainer: Trainer) -> None:
        if self._should_skip_saving_checkpoint(trainer):  # saved on the interval (or not fitting)
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
