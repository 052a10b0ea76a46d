"""Spike counts of a finished curve under both rules of olmo2_lit/train/spikes.py (OLMo-core's and the
paper's), fed the logged values in step order, as the callbacks are fed one value per step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from olmo2_lit.train.spikes import OLMoCoreSpikeDetector, PaperSpikeScore


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


def count_spikes(
    loss: tuple[np.ndarray, np.ndarray], grad_norm: tuple[np.ndarray, np.ndarray], rules: SpikeRules
) -> SpikeCounts:
    """Both rules over the steps where both signals were logged."""
    steps, li, gi = np.intersect1d(loss[0], grad_norm[0], assume_unique=True, return_indices=True)
    detector = OLMoCoreSpikeDetector(window=rules.window, sigma=rules.sigma)
    paper_loss = PaperSpikeScore(window=rules.paper_window, sigma=rules.paper_sigma)
    paper_grad = PaperSpikeScore(window=rules.paper_window, sigma=rules.paper_sigma)
    n_loss = n_grad = 0
    spike_steps = []
    for step, lv, gv in zip(steps.tolist(), loss[1][li].tolist(), grad_norm[1][gi].tolist()):
        if detector.update(lv, gv):
            spike_steps.append(step)
        n_loss += detector.last[0]
        n_grad += detector.last[1]
        paper_loss.update(lv)
        paper_grad.update(gv)
    if len(steps) <= rules.window:
        n_loss = n_grad = None
    either = None if n_loss is None else len(spike_steps)
    return SpikeCounts(n_loss, n_grad, either, spike_steps, paper_loss.score, paper_grad.score, len(steps))
