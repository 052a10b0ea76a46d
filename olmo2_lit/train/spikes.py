"""Loss and grad-norm spike detection as plain classes (no Trainer): OLMo-core's rule and the paper's score.

The callbacks in ``callbacks/spike_monitor.py`` feed them one value per optimizer step and log what they
report; the interventions read the decision (OLMO2.md §3.1).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Optional


class SigmaRule:
    """Flags a value that lies more than ``sigma`` population standard deviations above the mean of the
    previous values, upward only, once ``warmup`` previous values are kept, never when std < 1e-10.

    The arithmetic is OLMo-core's ``StabilityMonitorCallback._is_spike`` (plain Python floats, summed in
    order), so the decisions agree with it exactly. Every value enters the history, spikes included.

    Args:
        window: how many previous values the mean and std are taken over.
        sigma: how many standard deviations above the mean make a spike.
        warmup: how many previous values are needed before any value is judged (None: ``window``).
        inclusive: a value exactly at the threshold is a spike (the paper's "at least 7 sigma"); OLMo-core's
            rule uses a strict ``>``.
    """

    def __init__(self, *, window: int, sigma: float, warmup: Optional[int] = None, inclusive: bool = False):
        warmup = window if warmup is None else warmup
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if warmup < 2:
            raise ValueError(f"warmup must be >= 2 values (a std needs two), got {warmup}")
        if window < warmup:
            raise ValueError(f"window ({window}) must be >= warmup ({warmup}): the history never fills")
        self.window, self.sigma, self.warmup, self.inclusive = window, sigma, warmup, inclusive
        self.history: deque[float] = deque(maxlen=window)

    def update(self, value: float) -> bool:
        """Judge ``value`` against the history, then add it to the history. Returns whether it spiked."""
        spike = self.is_spike(value)
        self.history.append(float(value))
        return spike

    def is_spike(self, value: float) -> bool:
        """Whether ``value`` would be a spike now (the history is not changed)."""
        if len(self.history) < self.warmup:
            return False
        mean = sum(self.history) / len(self.history)
        std = math.sqrt(sum((x - mean) ** 2 for x in self.history) / len(self.history))
        if std < 1e-10:
            return False
        threshold = mean + self.sigma * std
        # A NaN or inf value compares False/True as IEEE says: inf spikes, NaN does not (the non-finite
        # guard handles it).
        return value >= threshold if self.inclusive else value > threshold

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = deque(state["history"], maxlen=self.window)


class SpikeRate:
    """Share of flagged steps over the last ``window`` steps and over the whole run."""

    def __init__(self, *, window: int):
        if window < 1:
            raise ValueError(f"rate window must be >= 1, got {window}")
        self.window = window
        self.recent: deque[bool] = deque(maxlen=window)
        self.total_spikes = 0
        self.total_steps = 0

    def update(self, spike: bool) -> None:
        self.recent.append(bool(spike))
        self.total_spikes += int(spike)
        self.total_steps += 1

    @property
    def recent_rate(self) -> Optional[float]:
        """Spike rate over the last ``window`` steps; None until that many steps were seen."""
        return sum(self.recent) / self.window if len(self.recent) >= self.window else None

    @property
    def total_rate(self) -> Optional[float]:
        return self.total_spikes / self.total_steps if self.total_steps else None

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "spikes": self.total_spikes, "steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"], maxlen=self.window)
        self.total_spikes, self.total_steps = state["spikes"], state["steps"]


class OLMoCoreSpikeDetector:
    """OLMo-core's ``StabilityMonitorCallback`` rule: a step is a spike if its CE loss or its pre-clip grad
    norm exceeds mean + ``sigma`` x std (population) of the previous ``window`` values (OLMO2.md §3.1).

    Args:
        window: previous values per signal (OLMo-core: 128).
        sigma: threshold in standard deviations (OLMo-core: 6).
        warmup: previous values needed before judging (None: ``window``, as OLMo-core).
        rate_window: steps of the recent spike rate (OLMo-core: 10,000).
    """

    def __init__(
        self,
        *,
        window: int = 128,
        sigma: float = 6.0,
        warmup: Optional[int] = None,
        rate_window: int = 10_000,
    ):
        self.loss = SigmaRule(window=window, sigma=sigma, warmup=warmup)
        self.grad_norm = SigmaRule(window=window, sigma=sigma, warmup=warmup)
        self.rate = SpikeRate(window=rate_window)
        self.last: tuple[bool, bool] = (False, False)

    def update(self, loss: float, grad_norm: float) -> bool:
        """Judge one optimizer step; returns whether it is a spike (either signal)."""
        self.last = (self.loss.update(loss), self.grad_norm.update(grad_norm))
        spike = any(self.last)
        self.rate.update(spike)
        return spike

    @property
    def total_rate(self) -> Optional[float]:
        """Cumulative spike rate; None before ``window`` steps (as OLMo-core, which logs it from then)."""
        return self.rate.total_rate if self.rate.total_steps >= self.loss.window else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss.state_dict(),
            "grad_norm": self.grad_norm.state_dict(),
            "rate": self.rate.state_dict(),
            "last": list(self.last),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss.load_state_dict(state["loss"])
        self.grad_norm.load_state_dict(state["grad_norm"])
        self.rate.load_state_dict(state["rate"])
        self.last = tuple(state["last"])


class PaperSpikeScore:
    """The OLMo 2 paper's spike score of one curve: the share of values at least ``sigma`` standard
    deviations above the rolling mean of the previous ``window`` values (OLMO2.md §3.1: 7 sigma, 1,000).

    Only values with a full window behind them are judged, and the share is over those; the population
    std is used (the paper does not say which).

    Args:
        window: previous values of the rolling mean and std (paper: 1000).
        sigma: threshold in standard deviations (paper: 7).
    """

    def __init__(self, *, window: int = 1000, sigma: float = 7.0):
        self.rule = SigmaRule(window=window, sigma=sigma, inclusive=True)
        self.judged = 0
        self.spikes = 0

    def update(self, value: float) -> bool:
        judged = len(self.rule.history) >= self.rule.warmup
        spike = self.rule.update(value)
        self.judged += int(judged)
        self.spikes += int(spike)
        return spike

    @property
    def score(self) -> Optional[float]:
        """Share of judged values that spiked (0..1); None before the first judged value."""
        return self.spikes / self.judged if self.judged else None

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.state_dict(), "judged": self.judged, "spikes": self.spikes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state["rule"])
        self.judged, self.spikes = state["judged"], state["spikes"]
