"""Whether every learning rate of a fit is 0, so that nothing will train (``Housekeeping`` warns before the
first step): ``lr: 0`` for any optimizer, a zero LR taken from ``init_from``'s checkpoint with
``lr_from_checkpoint``, or a schedule that is 0 over the whole fit. Such a run takes its steps, logs its
losses and changes no weight; a warning rather than an error, so a run that wants it (a throughput or
data-pipeline check) still runs."""

from __future__ import annotations

from typing import Optional

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
