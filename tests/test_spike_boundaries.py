"""Every window and threshold of ``olmo2_lit/train/spikes.py`` at its boundary k and its neighbours k-1, k+1.

The expectations are computed here from the documented rule (docs/stability.md, "Detection"), with small
numbers: a history alternating 1 and 3 has mean 2 and population std 1, so ``sigma`` standard deviations
above the mean is exactly ``2 + sigma``. No Trainer.

Guards against an off-by-one warm-up (a value judged one step early or late), a window that keeps one
value too many or too few, a threshold that is strict where it must be inclusive (or the reverse), the
std floor moved, and spike rates reported before (or after) their window is full.
"""

import pytest

from olmo2_lit.train.spikes import OLMoCoreSpikeDetector, PaperSpikeScore, SigmaRule, SpikeRate

EPS = 1e-6


def alternating(n: int) -> list[float]:
    """1, 3, 1, 3, ...: for an even ``n``, mean 2 and population std 1."""
    return [1.0 + 2.0 * (i % 2) for i in range(n)]


def fed(rule: SigmaRule, values) -> SigmaRule:
    for v in values:
        rule.update(v)
    return rule


# --- SigmaRule: warm-up --------------------------------------------------------------------------
@pytest.mark.parametrize(("kept", "judged"), [(3, False), (4, True), (5, True)])
def test_a_value_is_judged_once_warmup_values_are_kept(kept, judged):
    """warmup 4 (window 6): with 3 previous values nothing is a spike, with 4 or 5 a far value is."""
    rule = fed(SigmaRule(window=6, sigma=2.0, warmup=4), [1.0, 3.0, 1.0, 3.0, 1.0][:kept])
    assert rule.is_spike(1e6) is judged


@pytest.mark.parametrize(("kept", "judged"), [(3, False), (4, True), (5, True)])
def test_warmup_defaults_to_the_window(kept, judged):
    """OLMo-core's rule: no warm-up given means the whole window (4) must be kept first; the 5th value
    slides the window, which stays full."""
    rule = fed(SigmaRule(window=4, sigma=2.0), alternating(kept))
    assert rule.is_spike(1e6) is judged
    assert len(rule.history) == min(kept, 4)


# --- SigmaRule: the window -----------------------------------------------------------------------
@pytest.mark.parametrize(("age", "in_window"), [(3, True), (4, True), (5, False)])
def test_the_window_holds_exactly_the_last_window_values(age, in_window):
    """window 4: a value 4 steps back still counts, one 5 steps back does not. A 100 among 1s and 3s
    raises the threshold above 50; without it the history 1, 3, 1, 3 puts it at 2 + 2 = 4."""
    history = [1.0, 3.0, 1.0, 3.0, 1.0]
    history[len(history) - age] = 100.0
    rule = fed(SigmaRule(window=4, sigma=2.0), history)
    assert list(rule.history) == history[-4:]
    assert rule.is_spike(50.0) is (not in_window)


# --- SigmaRule: the threshold --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("inclusive", "offset", "spike"),
    [
        (False, -EPS, False),
        (False, 0.0, False),  # OLMo-core: strictly above
        (False, +EPS, True),
        (True, -EPS, False),
        (True, 0.0, True),  # the paper: at least sigma
        (True, +EPS, True),
    ],
)
def test_threshold_is_mean_plus_sigma_population_std(inclusive, offset, spike):
    """History 1, 3, 1, 3: mean 2, population std 1 (sample std would be 1.155), so sigma 3 puts the
    threshold at exactly 5."""
    rule = fed(SigmaRule(window=4, sigma=3.0, inclusive=inclusive), alternating(4))
    assert rule.is_spike(5.0 + offset) is spike


def test_the_threshold_is_upward_only():
    rule = fed(SigmaRule(window=4, sigma=3.0), alternating(4))
    assert not rule.is_spike(2.0 - 100.0)  # 100 std below the mean


@pytest.mark.parametrize(("spread", "judged"), [(1.8e-10, False), (2e-10, True), (2.2e-10, True)])
def test_no_value_is_judged_while_the_std_is_below_1e_10(spread, judged):
    """History 0, s, 0, s: population std s / 2: 0.9e-10 (not judged), exactly 1e-10 in floats (judged:
    the floor is ``std < 1e-10``), 1.1e-10."""
    rule = fed(SigmaRule(window=4, sigma=1.0), [0.0, spread, 0.0, spread])
    assert rule.is_spike(1.0) is judged


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({"window": 4, "sigma": 1.0, "warmup": 1}, False),  # a std needs two values
        ({"window": 4, "sigma": 1.0, "warmup": 2}, True),
        ({"window": 4, "sigma": 1.0, "warmup": 3}, True),
        ({"window": 3, "sigma": 1.0, "warmup": 4}, False),  # the window never holds the warm-up
        ({"window": 4, "sigma": 1.0, "warmup": 4}, True),
        ({"window": 5, "sigma": 1.0, "warmup": 4}, True),
        ({"window": 4, "sigma": 0.0}, False),
        ({"window": 4, "sigma": 1e-9}, True),
    ],
)
def test_sigma_rule_arguments_at_their_limits(kwargs, ok):
    if ok:
        SigmaRule(**kwargs)
    else:
        with pytest.raises(ValueError):
            SigmaRule(**kwargs)


# --- SpikeRate and the detector's rates ----------------------------------------------------------
@pytest.mark.parametrize(("steps", "rate"), [(2, None), (3, 1 / 3), (4, 0.0)])
def test_the_recent_rate_appears_once_its_window_is_full_and_then_slides(steps, rate):
    """rate window 3, one spike at the first step: None after 2 steps, 1/3 after 3, 0 after 4 (the
    spike has left the window)."""
    r = SpikeRate(window=3)
    for i in range(steps):
        r.update(i == 0)
    assert r.recent_rate == rate
    assert r.total_rate == pytest.approx(1 / steps)


def test_rate_window_of_one_is_accepted_and_zero_refused():
    assert SpikeRate(window=1).window == 1
    with pytest.raises(ValueError, match="rate window must be >= 1"):
        SpikeRate(window=0)


@pytest.mark.parametrize(("steps", "logged"), [(3, False), (4, True), (5, True)])
def test_the_total_rate_is_reported_from_window_steps_on(steps, logged):
    """OLMo-core logs the cumulative rate once ``window`` (4) steps were seen; none spiked here."""
    det = OLMoCoreSpikeDetector(window=4, sigma=6.0, rate_window=100)
    for v in alternating(steps):
        assert not det.update(v, v)
    assert det.total_rate == (0.0 if logged else None)


@pytest.mark.parametrize(
    ("loss", "norm", "last"),
    [(5.0, 5.0, (False, False)), (5.0 + EPS, 5.0, (True, False)), (5.0, 5.0 + EPS, (False, True))],
)
def test_a_step_spikes_when_either_signal_passes_its_own_threshold(loss, norm, last):
    """Both histories 1, 3, 1, 3 and sigma 3: each threshold is 5, strict."""
    det = OLMoCoreSpikeDetector(window=4, sigma=3.0, rate_window=10)
    for v in alternating(4):
        det.update(v, v)
    assert det.update(loss, norm) is any(last)
    assert det.last == last


# --- the paper's score ---------------------------------------------------------------------------
@pytest.mark.parametrize(("before", "judged"), [(3, 0), (4, 1), (5, 2)])
def test_the_paper_score_judges_only_values_with_a_full_window(before, judged):
    """window 4: the 4 values that fill the window are not judged; each later one is (and counts in
    the share's denominator)."""
    score = PaperSpikeScore(window=4, sigma=3.0)
    for v in alternating(before):
        score.update(v)
    score.update(2.0)  # the mean of any 4 alternating values: never a spike
    assert score.judged == max(0, before + 1 - 4)
    assert score.judged == judged
    assert score.score == (0.0 if judged else None)


@pytest.mark.parametrize(("offset", "spike"), [(-EPS, False), (0.0, True), (+EPS, True)])
def test_the_paper_threshold_is_at_least_sigma(offset, spike):
    """History 1, 3, 1, 3, sigma 3: a value of exactly 5 counts (the paper's "at least")."""
    score = PaperSpikeScore(window=4, sigma=3.0)
    for v in alternating(4):
        score.update(v)
    assert score.update(5.0 + offset) is spike
    assert (score.judged, score.spikes) == (1, int(spike))
