"""Spike counts of a finished curve under both rules of olmo2_lit/train/spikes.py (OLMo-core's and the
paper's), as the callbacks would count them fed the logged values one by one.

Feeding 10,000 values one by one costs O(window) Python arithmetic each (the rules keep OLMo-core's exact
float sums): minutes for 30 runs with the paper's 1,000-value window. So a numpy pass computes every
value's rolling mean and std (running sums, O(n)) and drops the values far below their threshold; each
remaining candidate is judged by the rule itself (``SigmaRule.is_spike`` over the same previous
``window`` values), so every decision is the rule's own (tests/research/test_spike_counts.py checks
equality with one-by-one feeding).
As in ``SpikeMonitor``, a non-finite value is not judged and does not enter the history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from olmo2_lit.train.spikes import SigmaRule

#: relative slack of the numpy pre-pass: a value this close below its threshold goes to the exact rule
_SLACK = 1e-6


@dataclass(frozen=True)
class SpikeRules:
    """The two rules' settings (defaults: OLMo-core's 6 sigma over 128, the paper's 7 over 1,000)."""

    window: int = 128
    sigma: float = 6.0
    paper_window: int = 1000
    paper_sigma: float = 7.0


@dataclass(frozen=True)
class SpikeCounts:
    """OLMo-core's rule: loss spikes, grad-norm spikes, steps with either (and their steps); the paper's
    score per signal. None where no value had a full window behind it (a short run)."""

    loss: Optional[int]
    grad_norm: Optional[int]
    either: Optional[int]
    steps: list[int]
    paper_loss: Optional[float]
    paper_grad_norm: Optional[float]
    values: int


def spike_mask(values: np.ndarray, *, window: int, sigma: float, inclusive: bool) -> Optional[np.ndarray]:
    """Which values ``SigmaRule(window, sigma, inclusive)`` flags when fed ``values`` in order (every
    value enters the history); None if no value has ``window`` values before it."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n <= window:
        return None
    mean, std = _rolling_mean_std(values, window)
    threshold = mean + sigma * std
    current = values[window:]
    slack = _SLACK * (np.abs(mean) + sigma * std + np.abs(current)) + 1e-12
    candidates = np.flatnonzero((current >= threshold - slack) | (std < 1e-9)) + window
    mask = np.zeros(n, dtype=bool)
    rule = SigmaRule(window=window, sigma=sigma, inclusive=inclusive)
    for i in candidates.tolist():
        rule.history = deque(values[i - window : i].tolist(), maxlen=window)
        mask[i] = rule.is_spike(float(values[i]))
    return mask


def _rolling_mean_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of the ``window`` values before each of ``values[window:]``, in O(n):
    running sums of the values less their first window's mean (so long curves lose no precision; the
    pre-pass's error stays far below ``_SLACK``). Windows whose std comes out near zero, where running
    sums cancel, are recomputed directly."""
    shift = values[:window].mean()
    d = values - shift
    c1 = np.concatenate([[0.0], np.cumsum(d)])
    c2 = np.concatenate([[0.0], np.cumsum(d * d)])
    end = np.arange(window, len(values))  # the window before values[i] is values[i - window : i]
    m = (c1[end] - c1[end - window]) / window
    var = np.maximum((c2[end] - c2[end - window]) / window - m * m, 0.0)
    std = np.sqrt(var)
    mean = m + shift
    flat = np.flatnonzero(std < 1e-6)
    if len(flat):
        history = sliding_window_view(values[:-1], window)  # row i: the window before values[window + i]
        mean[flat] = history[flat].mean(axis=1)
        std[flat] = history[flat].std(axis=1)
    return mean, std


def count_spikes(
    loss: tuple[np.ndarray, np.ndarray], grad_norm: tuple[np.ndarray, np.ndarray], rules: SpikeRules
) -> SpikeCounts:
    """Both rules over the steps where both signals were logged and finite."""
    steps, li, gi = np.intersect1d(loss[0], grad_norm[0], assume_unique=True, return_indices=True)
    lv, gv = loss[1][li], grad_norm[1][gi]
    finite = np.isfinite(lv) & np.isfinite(gv)
    steps, lv, gv = steps[finite], lv[finite], gv[finite]
    core = [spike_mask(v, window=rules.window, sigma=rules.sigma, inclusive=False) for v in (lv, gv)]
    paper = [
        spike_mask(v, window=rules.paper_window, sigma=rules.paper_sigma, inclusive=True) for v in (lv, gv)
    ]
    judged = len(steps) - rules.paper_window
    scores = [None if m is None else float(m.sum()) / judged for m in paper]
    if core[0] is None:
        return SpikeCounts(None, None, None, [], *scores, len(steps))
    either = core[0] | core[1]
    return SpikeCounts(
        int(core[0].sum()), int(core[1].sum()), int(either.sum()), steps[either].tolist(), *scores, len(steps)
    )
