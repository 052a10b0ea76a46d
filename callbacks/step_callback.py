"""The per-step seam between OLMo2LitModule and the callbacks: one record per optimizer step, handed to
the callbacks that act per step, observers first, then interventions.

- :class:`StepCallback`: subclass it and implement :meth:`StepCallback.on_step`; set ``role`` to
  ``"intervention"`` if the callback changes the run (the LR, the weights, the data), so it runs after
  every observer has seen the step, or ``"stop"`` if it saves and stops the run, so it runs last.
- :class:`NonFiniteHandler`: a callback the module hands a non-finite step to, before the update.
- :class:`StepPublisher`: added by the module itself (``configure_callbacks``); it asks the module for the
  finished step's record and calls each ``on_step``. Lightning runs it before ``ModelCheckpoint``, so a
  checkpoint saved at a step already holds every callback's state after that step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Optional

from lightning.pytorch import Callback, LightningModule, Trainer

from olmo2_lit.train.step_record import StepRecord

Role = Literal["observer", "intervention", "stop"]
#: The order step callbacks run in: observers (read and log), interventions (change the LR, the weights,
#: the data), then the callbacks that save a checkpoint and stop the run (preemption, SLURM requeue), so
#: what they save holds every intervention's effect.
ROLES: tuple[Role, ...] = ("observer", "intervention", "stop")


class StepCallback(Callback, ABC):
    """A callback that runs once per optimizer step, on that step's :class:`StepRecord`.

    ``on_step`` is called on every rank after the update and the LR scheduler's step (an LR set here is
    the next step's), and before ``ModelCheckpoint`` decides whether to save this step. Observers run
    first, then interventions, then the callbacks that stop the run; within a role, in
    ``trainer.callbacks`` order.
    """

    role: ClassVar[Role] = "observer"

    @abstractmethod
    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        """Called once per optimizer step with the step's record."""

    def restart_from(self) -> Optional[str]:
        """A checkpoint this callback asked the run to restart from (see ``Rollback``); None: no restart."""
        return None


class NonFiniteHandler(Callback, ABC):
    """A callback that takes over optimizer steps whose global loss or grad norm is not finite.

    Without one, such a step raises ``FloatingPointError``. With one, the module calls
    :meth:`on_nonfinite_step` on every rank, before clipping and the update, and goes on.
    """

    @abstractmethod
    def on_nonfinite_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        """Skip the step (drop the gradients: ``p.grad = None``) or raise. ``record.skipped`` is not yet
        decided here."""


def step_callbacks(trainer: Trainer) -> list[StepCallback]:
    """The run's step callbacks in the order they are called (:data:`ROLES`)."""
    found = [cb for cb in trainer.callbacks if isinstance(cb, StepCallback)]
    return [cb for role in ROLES for cb in found if cb.role == role]


def requested_restart(trainer: Trainer) -> Optional[str]:
    """The checkpoint some step callback asked the stopped run to restart from, if any."""
    return next((path for cb in step_callbacks(trainer) if (path := cb.restart_from())), None)


class StepPublisher(Callback):
    """Calls every :class:`StepCallback` with the record of each finished optimizer step."""

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        record = pl_module.finish_step()
        if record is None:
            return  # mid-accumulation
        for callback in step_callbacks(trainer):
            callback.on_step(trainer, pl_module, record)
