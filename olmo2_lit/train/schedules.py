"""Learning-rate schedules as multipliers of the peak LR, counted in steps or in tokens.

A schedule is a small object with ``factor(t) -> float``, where ``t`` counts optimizer steps or
tokens *including* the step being taken, as OLMo and OLMo-core do (step 1 runs at ``factor(1)``).
:class:`ScheduledLR` turns one into a torch LR scheduler whose token count is the data position.
Schedules validate themselves on construction, which jsonargparse does while parsing, so a bad one
(warmup >= t_max) fails before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

Units = Literal["steps", "tokens"]


class Schedule:
    """Base class. Args common to every schedule:

    Args:
        units: whether ``warmup``/``t_max``/... count optimizer steps or training tokens.
    """

    def __init__(self, *, units: Units = "steps") -> None:
        if units not in ("steps", "tokens"):
            raise ValueError(f"schedule units must be 'steps' or 'tokens', got {units!r}")
        self.units = units

    def factor(self, t: float) -> float:
        """LR multiplier at progress ``t`` (in ``units``)."""
        raise NotImplementedError

    def _warmup(self, t: float, warmup: float) -> float:
        return t / warmup


class _WarmupThenDecay(Schedule):
    """Shared by the schedules that warm up to the peak and then decay until ``t_max``."""

    def __init__(self, *, warmup: float, t_max: float, alpha_f: float, units: Units) -> None:
        super().__init__(units=units)
        _check("warmup", warmup)
        _check("t_max", t_max, positive=True)
        if warmup >= t_max:
            raise ValueError(f"schedule warmup ({warmup}) must be < t_max ({t_max})")
        if not 0.0 <= alpha_f <= 1.0:
            raise ValueError(f"schedule alpha_f must be in [0, 1], got {alpha_f}")
        self.warmup, self.t_max, self.alpha_f = warmup, t_max, alpha_f

    def factor(self, t: float) -> float:
        if t < self.warmup:
            return self._warmup(t, self.warmup)
        progress = min((t - self.warmup) / (self.t_max - self.warmup), 1.0)
        return self.alpha_f + (1 - self.alpha_f) * self._decay(progress)

    def _decay(self, progress: float) -> float:
        """From 1 at progress 0 to 0 at progress 1."""
        raise NotImplementedError


def _check(name: str, value: float, *, positive: bool = False) -> None:
    if value < 0 or (positive and value == 0):
        raise ValueError(f"schedule field {name} must be {'> 0' if positive else '>= 0'}, got {value}")


class Constant(Schedule):
    """Constant LR after an optional linear warmup.

    Args:
        warmup: length of the linear warmup from 0.
        units: steps or tokens.
    """

    def __init__(self, *, warmup: float = 0, units: Units = "steps") -> None:
        super().__init__(units=units)
        _check("warmup", warmup)
        self.warmup = warmup

    def factor(self, t: float) -> float:
        return self._warmup(t, self.warmup) if t < self.warmup else 1.0


class CosineWithWarmup(_WarmupThenDecay):
    """OLMo 2 stage 1: linear warmup from 0, then cosine from the peak down to ``alpha_f * peak``
    at ``t_max``, flat after. A run may stop before t_max (the 7B stopped at 3.9T of 5T tokens).

    OLMO2.md §2.3 (OL ``CosWithWarmup``: ``t_warmup``, ``t_max``, ``alpha_f``; units = tokens).

    Args:
        warmup: warmup length (OLMo 2: 8,388,608,000 tokens).
        t_max: end of the cosine (OLMo 2: 5e12 tokens); must exceed warmup.
        alpha_f: final LR as a fraction of the peak (OLMo 2: 0.1).
        units: steps or tokens.
    """

    def __init__(self, *, warmup: float, t_max: float, alpha_f: float = 0.1, units: Units = "steps") -> None:
        super().__init__(warmup=warmup, t_max=t_max, alpha_f=alpha_f, units=units)

    def _decay(self, progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * progress))


class LinearDecay(_WarmupThenDecay):
    """OLMo 2 stage 2 (annealing): linear from the peak to ``alpha_f * peak`` (0) over ``t_max``,
    no warmup by default. Pair with ``lr_from_checkpoint: true`` to start from the LR the stage-1
    checkpoint ended on (OLMO2.md §2.4).

    Args:
        t_max: length of the decay.
        warmup: optional linear warmup before the decay.
        alpha_f: final LR as a fraction of the start (0 in OLMo 2 stage 2).
        units: steps or tokens.
    """

    def __init__(
        self, *, t_max: float, warmup: float = 0, alpha_f: float = 0.0, units: Units = "steps"
    ) -> None:
        super().__init__(warmup=warmup, t_max=t_max, alpha_f=alpha_f, units=units)

    def _decay(self, progress: float) -> float:
        return 1.0 - progress


class WarmupStableDecay(Schedule):
    """Warmup-stable-decay: linear warmup, constant peak, then linear decay to ``alpha_f * peak``
    over the last ``decay`` units before ``t_max``.

    Args:
        warmup: warmup length.
        decay: length of the final decay.
        t_max: total length; warmup + decay must not exceed it.
        alpha_f: final LR fraction.
        units: steps or tokens.
    """

    def __init__(
        self, *, warmup: float, decay: float, t_max: float, alpha_f: float = 0.0, units: Units = "steps"
    ) -> None:
        super().__init__(units=units)
        for name, value in (("warmup", warmup), ("decay", decay)):
            _check(name, value)
        _check("t_max", t_max, positive=True)
        if warmup + decay > t_max:
            raise ValueError(f"schedule warmup + decay ({warmup} + {decay}) must be <= t_max ({t_max})")
        if not 0.0 <= alpha_f <= 1.0:
            raise ValueError(f"schedule alpha_f must be in [0, 1], got {alpha_f}")
        self.warmup, self.decay, self.t_max, self.alpha_f = warmup, decay, t_max, alpha_f

    def factor(self, t: float) -> float:
        if t < self.warmup:
            return self._warmup(t, self.warmup)
        decay_start = self.t_max - self.decay
        if t < decay_start or self.decay == 0:
            return 1.0
        progress = min((t - decay_start) / self.decay, 1.0)
        return 1.0 - (1.0 - self.alpha_f) * progress


#: Key of a converted scheduler state whose optimizer LRs are the last step's, not the next one's.
SET_LR_ON_LOAD = "set_lr_on_load"


class ScheduledLR(LRScheduler):
    """A torch LR scheduler driven by a :class:`Schedule`, stepped once per optimizer step.

    Step ``k`` (counted from 1) runs at the schedule's value at ``k`` steps, or at the tokens seen once
    step ``k``'s batch is in, as OLMo and OLMo-core index it (the step is incremented before the LR is
    set). The token count is not kept here: it is the data position (``tokens_seen``), so a token
    schedule stays right when the global batch changes on resume.

    Args:
        optimizer: the optimizer whose groups' ``initial_lr`` are the peak LRs.
        schedule: the shape.
        tokens_per_step: tokens in one global batch (the batch plan's).
        tokens_seen: the run's token counter, read when the LR of the next step is set.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        schedule: Schedule,
        tokens_per_step: int,
        tokens_seen: Callable[[], int],
    ) -> None:
        self.schedule = schedule
        self.tokens_per_step = tokens_per_step
        self.tokens_seen = tokens_seen
        super().__init__(optimizer)

    def progress(self) -> float:
        """``t`` of the step about to run, in the schedule's units."""
        if self.schedule.units == "tokens":
            return float(self.tokens_seen() + self.tokens_per_step)
        return float(self.last_epoch + 1)

    def get_lr(self) -> list[float]:
        f = self.schedule.factor(self.progress())
        return [base * f for base in self.base_lrs]

    def state_dict(self) -> dict:
        # The schedule, the step size and the counter come from the run that loads the state.
        skip = ("schedule", "tokens_per_step", "tokens_seen")
        return {k: v for k, v in super().state_dict().items() if k not in skip}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the position; a state converted from OLMo-core (``set_lr_on_load``) also sets the groups'
        LR to the next step's, because OLMo-core saves the LR its last step ran at (it sets the LR before
        each step, we after) (olmo2_lit/weights/olmo_core.py)."""
        state_dict = dict(state_dict)
        set_lr = state_dict.pop(SET_LR_ON_LOAD, False)
        super().load_state_dict(state_dict)
        if set_lr:
            for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
                group["lr"] = lr
