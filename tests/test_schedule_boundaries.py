"""Every phase boundary of the LR schedules at k-1, k and k+1, zero-length phases included.

Expectations come from the documented shapes (``olmo2_lit/train/schedules.py``, docs/training.md) with
small numbers: a linear warmup over 4 is t / 4; a cosine from 2 to 6 is at its middle (t = 4) exactly
halfway between the peak and ``alpha_f``; a linear decay over 4 loses a quarter of the way per unit.
``ScheduledLR`` runs step k at ``factor(k)`` (steps) or at the tokens seen once step k's batch is in.

Guards against a phase that ends one unit early or late, a division by a zero-length phase, a WSD
with no stable phase that never reaches the peak (or decays from the wrong place), an LR that moves on
after ``t_max``, bad fractions accepted, and the first step run at factor(0).
"""

import math

import pytest
from schedule_helpers import lrs

from olmo2_lit.train.schedules import Constant, CosineWithWarmup, LinearDecay, WarmupStableDecay

COS_QUARTER = 0.5 * (1 + math.cos(math.pi / 4))  # the cosine factor a quarter of the way through


# --- warmups -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: Constant(warmup=4),
        lambda: CosineWithWarmup(warmup=4, t_max=100, alpha_f=0.1),
        lambda: LinearDecay(warmup=4, t_max=100),
        lambda: WarmupStableDecay(warmup=4, decay=10, t_max=100),
    ],
    ids=["constant", "cosine", "linear", "wsd"],
)
@pytest.mark.parametrize(("t", "expected"), [(3, 0.75), (4, 1.0), (5, None)])
def test_the_warmup_reaches_the_peak_at_exactly_warmup(make, t, expected):
    """t / 4 below 4; the peak at 4; after it the next phase, which has barely started (at most 1/96
    of a decay over 96)."""
    factor = make().factor(t)
    if expected is None:
        assert 0.98 < factor <= 1.0
    else:
        assert factor == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(warmup=0),
        CosineWithWarmup(warmup=0, t_max=4, alpha_f=0.1),
        LinearDecay(t_max=4),
        WarmupStableDecay(warmup=0, decay=2, t_max=4),
        WarmupStableDecay(warmup=0, decay=0, t_max=4),
    ],
    ids=["constant", "cosine", "linear", "wsd", "wsd-no-decay"],
)
def test_no_warmup_starts_at_the_peak_without_dividing_by_zero(schedule):
    assert schedule.factor(0) == 1.0


# --- decays and t_max ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (2, 1.0),  # the end of the warmup
        (3, 0.1 + 0.9 * COS_QUARTER),
        (4, 0.1 + 0.9 * 0.5),  # the middle
        (5, 0.1 + 0.9 * (1 - COS_QUARTER)),
        (6, 0.1),  # t_max
        (7, 0.1),  # flat after
    ],
)
def test_cosine_phases(t, expected):
    assert CosineWithWarmup(warmup=2, t_max=6, alpha_f=0.1).factor(t) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("t", "expected"), [(3, 0.25), (4, 0.0), (5, 0.0)])
def test_linear_decay_reaches_alpha_f_at_t_max_and_stays(t, expected):
    assert LinearDecay(t_max=4).factor(t) == pytest.approx(expected, abs=1e-12)
    assert LinearDecay(t_max=4, alpha_f=0.2).factor(t) == pytest.approx(0.2 + 0.8 * expected, abs=1e-12)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (5, 1.0),  # stable
        (6, 1.0),  # decay start (t_max - decay): progress 0
        (7, 0.75),
        (9, 0.25),
        (10, 0.0),  # t_max
        (11, 0.0),
    ],
)
def test_wsd_decays_over_the_last_decay_units(t, expected):
    assert WarmupStableDecay(warmup=2, decay=4, t_max=10).factor(t) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("t", "expected"),
    [(3, 0.75), (4, 1.0), (5, 0.75), (7, 0.25), (8, 0.0), (9, 0.0)],
)
def test_wsd_with_no_stable_phase_peaks_once_and_decays_at_once(t, expected):
    """warmup + decay == t_max (4 + 4 = 8): the peak is reached at t = 4 only, then the decay."""
    assert WarmupStableDecay(warmup=4, decay=4, t_max=8).factor(t) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("t", [7, 8, 9])
def test_wsd_with_no_decay_holds_the_peak(t):
    assert WarmupStableDecay(warmup=2, decay=0, t_max=8, alpha_f=0.1).factor(t) == 1.0


# --- the limits of the arguments -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "ok"),
    [
        (lambda: CosineWithWarmup(warmup=9, t_max=10), True),
        (lambda: CosineWithWarmup(warmup=10, t_max=10), False),  # no decay left
        (lambda: CosineWithWarmup(warmup=11, t_max=10), False),
        (lambda: LinearDecay(warmup=9, t_max=10), True),
        (lambda: LinearDecay(warmup=10, t_max=10), False),
        (lambda: WarmupStableDecay(warmup=4, decay=5, t_max=10), True),  # one stable unit
        (lambda: WarmupStableDecay(warmup=5, decay=5, t_max=10), True),  # none
        (lambda: WarmupStableDecay(warmup=5, decay=6, t_max=10), False),  # overlapping
        (lambda: CosineWithWarmup(warmup=0, t_max=1), True),
        (lambda: CosineWithWarmup(warmup=0, t_max=0), False),
        (lambda: WarmupStableDecay(warmup=0, decay=0, t_max=0), False),
        (lambda: Constant(warmup=-1), False),
        (lambda: WarmupStableDecay(warmup=0, decay=-1, t_max=10), False),
    ],
)
def test_phase_lengths_at_their_limits(make, ok):
    if ok:
        make()
    else:
        with pytest.raises(ValueError, match="schedule"):
            make()


@pytest.mark.parametrize("cls", [CosineWithWarmup, LinearDecay, WarmupStableDecay])
@pytest.mark.parametrize(("alpha_f", "ok"), [(-0.01, False), (0.0, True), (1.0, True), (1.01, False)])
def test_alpha_f_is_a_fraction_in_every_schedule(cls, alpha_f, ok):
    """A negative alpha_f would end on a negative LR (training uphill); above 1 the 'decay' rises."""
    kwargs = {"warmup": 1, "t_max": 10, "alpha_f": alpha_f}
    if cls is WarmupStableDecay:
        kwargs["decay"] = 5
    if ok:
        assert cls(**kwargs).factor(10) == pytest.approx(alpha_f)
    else:
        with pytest.raises(ValueError, match=r"alpha_f must be in \[0, 1\]"):
            cls(**kwargs)


# --- the step a factor is read at ----------------------------------------------------------------
def test_step_k_runs_at_factor_k_around_the_warmup_end():
    """Steps 1..4 of a 3-step warmup: 1/3, 2/3, the peak at step 3, the peak."""
    assert lrs(Constant(warmup=3), 4) == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])


def test_step_k_runs_at_factor_k_around_t_max():
    """LinearDecay over 4 steps: step 4 is the first at alpha_f, step 5 stays there."""
    assert lrs(LinearDecay(t_max=4), 5) == pytest.approx([0.75, 0.5, 0.25, 0.0, 0.0])


def test_a_token_schedule_reads_the_tokens_once_the_step_batch_is_in():
    """Warmup over 300 tokens, 100 per step: step 3 (300 tokens in) is the first at the peak."""
    assert lrs(Constant(warmup=300, units="tokens"), 4) == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
