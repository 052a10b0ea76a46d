"""A warning, before the first step, when every learning rate of the fit is 0 and so nothing will train."""

from __future__ import annotations

import math
from typing import Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from olmo2_lit.train.schedules import ScheduledLR


def zero_lr_message(scheduler: ScheduledLR, *, steps: int, peak_from: str) -> Optional[str]:
    """One line naming the LR if every parameter group's LR is 0 at each of the next ``steps`` optimizer
    steps (the whole fit), else None.

    Args:
        scheduler: the fit's LR scheduler, as restored (its step count and peak LRs).
        steps: optimizer steps left in the fit (at least the next one is checked).
        peak_from: where the peak LR was set, for the message.
    """
    peaks = [float(lr) for lr in scheduler.base_lrs]
    if not any(peaks):
        return f"the learning rate is 0 ({peak_from}: {peaks[0]}): nothing will train; set a positive lr"
    schedule, first = scheduler.schedule, scheduler.last_epoch + 1
    last = first + max(steps, 1) - 1
    for step in range(first, last + 1):  # stops at the first step that trains (the first, usually)
        if schedule.units == "tokens":
            t = scheduler.tokens_seen() + (step - scheduler.last_epoch) * scheduler.tokens_per_step
        else:
            t = step
        if any(peak * schedule.factor(t) for peak in peaks):
            return None
    return (
        f"the learning rate is 0 at every step of this fit (steps {first}..{last}): model.schedule "
        f"({type(schedule).__name__}) is 0 there, from a peak of {max(peaks)}; nothing will train; check its "
        "t_max, alpha_f and units"
    )


class ZeroLRWarning(Callback):
    """Warns once, on rank 0, when ``fit`` is about to run with every learning rate 0 (``lr: 0``, a zero
    LR from ``init_from``'s checkpoint with ``lr_from_checkpoint``, or a schedule that is 0 over the whole
    run): such a run takes its steps, logs its losses and changes no weight. On by default (the CLI
    adds it); a warning, not an error, so a run that wants it (a throughput or data-pipeline check) runs.
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        total = trainer.estimated_stepping_batches  # max_steps, or the epochs' steps
        steps = 1 if math.isinf(total) else int(total) - trainer.global_step
        from_checkpoint = getattr(pl_module, "lr_from_checkpoint", False) and getattr(
            pl_module, "init_from", None
        )
        peak_from = (
            "the LR model.init_from's checkpoint ended on, with lr_from_checkpoint"
            if from_checkpoint
            else "model.optimizer.init_args.lr"
        )
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, ScheduledLR):
                message = zero_lr_message(config.scheduler, steps=steps, peak_from=peak_from)
                if message:
                    rank_zero_warn(message)
