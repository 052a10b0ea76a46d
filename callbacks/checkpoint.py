"""Periodic checkpoints, plus the final state of a fit that reaches its end, minus the steps a rollback
discards."""

from __future__ import annotations

from typing import Any, Optional

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from olmo2_lit import compat
from olmo2_lit.callbacks.step_callback import requested_restart


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (every option as documented there) that also saves the last step,
    and saves nothing once a step callback has asked the run to restart from an earlier checkpoint.

    The last step: Lightning saves every ``every_n_train_steps`` steps and, at the end, ``last.ckpt`` only
    if nothing was saved at all: ``max_steps: 5`` with a checkpoint every 2 steps ended with ``last.ckpt``
    at step 4, and the fifth update was lost. Like OLMo-core (its checkpointer's ``post_train``), a fit
    that reaches ``trainer.max_steps`` (or ``trainer.max_epochs``) saves its final state as one more
    periodic checkpoint (``step{step:07d}.ckpt``, named as ``filename`` says) and as ``last.ckpt``,
    through the strategy's own save (sharded directories and atomic publishing included), unless that
    step was already saved on the interval. ``max_steps`` is saved in ``on_train_batch_end``, the hook
    periodic saves use, so the file resumes exactly like any periodic one. A stop asked for by a
    callback (SLURM requeue, which saves its own ``hpc_ckpt``; early stopping; ``max_time``) or by a
    signal (``Preemption`` saves ``last.ckpt``) is not the end of the fit.

    A restart (``Rollback``): the step that asked for it holds the weights being discarded, so neither a
    periodic file nor ``last.ckpt`` may record it.

    A resume: nothing is saved before its first optimizer step, so a resume from a step on the interval
    does not write that step again, mid-step, over the file it resumed from.
    """

    #: the step the fit started (or resumed) at, set in ``on_train_start``
    started_at: Optional[int] = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.started_at = trainer.global_step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if requested_restart(trainer) is not None:
            return
        if trainer.global_step == self.started_at:
            # No optimizer step yet since the fit (re)started: a resume from a step on the interval
            # would save that step again after the first micro-batch (Lightning does not save which
            # step it last wrote), over the file resumed from, holding the data position one
            # micro-batch on and without that micro-batch's gradient.
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if 0 < trainer.max_steps <= trainer.global_step:  # the optimizer step that ends the fit
            compat.save_checkpoint_now(self, trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if requested_restart(trainer) is not None:
            return
        super().on_train_epoch_end(trainer, pl_module)
        # `processed` counts this epoch already (Lightning's fit loop checks max_epochs on it)
        if 0 < (trainer.max_epochs or -1) <= trainer.fit_loop.epoch_progress.current.processed:
            compat.save_checkpoint_now(self, trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if requested_restart(trainer) is None:
            super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if requested_restart(trainer) is None:
            super().on_train_end(trainer, pl_module)
