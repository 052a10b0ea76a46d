"""The counts ``compare`` gives under both spike rules equal feeding olmo2_lit/train/spikes.py's own
classes one value at a time (``OLMoCoreSpikeDetector``, ``PaperSpikeScore``), including a value planted
exactly at a threshold (spike for the paper's inclusive rule, not for OLMo-core's strict one), flat
stretches (std 0), planted spikes, and a falling curve offset far from zero."""

from __future__ import annotations

import math

import numpy as np
import pytest

from olmo2_lit.research.spike_counts import SpikeRules, count_spikes, spike_mask
from olmo2_lit.train.spikes import OLMoCoreSpikeDetector, PaperSpikeScore

RULES = SpikeRules(window=16, sigma=3.0, paper_window=40, paper_sigma=3.0)


def _threshold(history: list[float], sigma: float) -> float:
    """SigmaRule's threshold, with its arithmetic."""
    mean = sum(history) / len(history)
    return mean + sigma * math.sqrt(sum((x - mean) ** 2 for x in history) / len(history))


def _series(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    loss = list(3 + 0.1 * rng.standard_normal(300))
    if seed == 3:  # a falling curve far from zero: running sums must not lose the small std to the offset
        loss = list(np.array(loss) + 1000 + 7 * np.exp(-np.arange(300) / 100))
    grad = list(1 + 0.2 * rng.standard_t(3, 300))  # heavy tails: real spikes
    loss[100:130] = [2.5] * 30  # flat: std 0 for a while
    for i in (50, 180, 250):
        loss[i] += 2.0
    loss[200] = _threshold(loss[200 - RULES.window : 200], RULES.sigma)  # exactly at OLMo-core's threshold
    grad[220] = _threshold(grad[220 - RULES.paper_window : 220], RULES.paper_sigma)  # at the paper's
    return np.array(loss), np.array(grad)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_counts_equal_feeding_the_rules_one_value_at_a_time(seed):
    loss, grad = _series(seed)
    steps = np.arange(len(loss))
    got = count_spikes((steps, loss), (steps, grad), RULES)

    detector = OLMoCoreSpikeDetector(window=RULES.window, sigma=RULES.sigma)
    paper_loss = PaperSpikeScore(window=RULES.paper_window, sigma=RULES.paper_sigma)
    paper_grad = PaperSpikeScore(window=RULES.paper_window, sigma=RULES.paper_sigma)
    n_loss = n_grad = 0
    either = []
    for step, lv, gv in zip(steps.tolist(), loss.tolist(), grad.tolist()):
        if detector.update(lv, gv):
            either.append(step)
        n_loss += detector.last[0]
        n_grad += detector.last[1]
        paper_loss.update(lv)
        paper_grad.update(gv)
    assert (got.loss, got.grad_norm, got.steps) == (n_loss, n_grad, either)
    assert (got.paper_loss, got.paper_grad_norm) == (paper_loss.score, paper_grad.score)
    assert 50 in either and 200 not in got.steps  # planted spike; at the threshold is not above it
    assert n_loss >= 3 and paper_grad.spikes >= 1


def test_short_curve_has_no_counts_and_non_finite_values_are_left_out():
    steps = np.arange(10)
    got = count_spikes((steps, np.ones(10)), (steps, np.ones(10)), RULES)
    assert (got.loss, got.paper_loss, got.values) == (None, None, 10)
    loss = np.concatenate([np.ones(20) + 0.01 * np.arange(20), [np.nan], np.ones(5)])
    steps = np.arange(len(loss))
    assert count_spikes((steps, loss), (steps, np.ones(len(loss))), RULES).values == len(loss) - 1


def _noisy_then_spike(n: int) -> np.ndarray:
    """``n - 1`` values alternating 1.0 / 1.1 (std 0.05), then 100: a spike once judged."""
    return np.append(1.0 + 0.1 * (np.arange(n - 1) % 2), 100.0)


@pytest.mark.parametrize(
    "n, judged", [(RULES.window - 1, False), (RULES.window, False), (RULES.window + 1, True)]
)
def test_a_curve_exactly_window_long_has_no_judged_value(n, judged):
    # a value is judged only with ``window`` values before it: the first is values[window], so a curve
    # of exactly ``window`` values has none (count None, not 0), and one more value is judged (the spike)
    steps = np.arange(n)
    got = count_spikes((steps, _noisy_then_spike(n)), (steps, np.ones(n)), RULES)
    assert (got.loss, got.grad_norm, got.either, got.steps) == (
        (1, 0, 1, [n - 1]) if judged else (None,) * 3 + ([],)
    )
    mask = spike_mask(_noisy_then_spike(n), window=RULES.window, sigma=RULES.sigma, inclusive=False)
    assert (mask is None) == (not judged)


@pytest.mark.parametrize("n, judged", [(RULES.paper_window, False), (RULES.paper_window + 1, True)])
def test_paper_score_needs_a_value_after_a_full_window(n, judged):
    steps = np.arange(n)
    got = count_spikes((steps, _noisy_then_spike(n)), (steps, np.ones(n)), RULES)
    assert (got.paper_loss, got.paper_grad_norm) == ((1.0, 0.0) if judged else (None, None))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_step_with_non_finite_grad_norm_is_left_out_of_both_signals(bad):
    n = 60
    steps = np.arange(n)
    rng = np.random.default_rng(5)
    loss, grad = 3 + 0.1 * rng.standard_normal(n), 1 + 0.1 * rng.standard_normal(n)
    loss[30] += 5.0  # a loss spike at step 30 ...
    grad[30] = bad  # ... whose grad norm is not finite: the step is not judged at all
    got = count_spikes((steps, loss), (steps, grad), RULES)
    keep = steps != 30
    without = count_spikes((steps[keep], loss[keep]), (steps[keep], grad[keep]), RULES)
    assert got.values == n - 1
    assert (got.loss, got.grad_norm, got.steps) == (without.loss, without.grad_norm, without.steps)
    assert 30 not in got.steps and got.loss == 0
