"""Spike detection on hand-made sequences and against OLMo-core's StabilityMonitorCallback, no Trainer."""

import copy
import random

import pytest
from olmo_core.train.callbacks.stability_monitor import StabilityMonitorCallback

from olmo2_lit.train.spikes import OLMoCoreSpikeDetector, PaperSpikeScore, SigmaRule


def test_threshold_by_hand():
    """Guards against the wrong std (sample vs population), a downward or early trigger, or a std of 0.

    History 1, 2, 1, 2: mean 1.5, population std 0.5, so 6 sigma puts the threshold at exactly 4.5."""
    rule = SigmaRule(window=4, sigma=6.0)
    assert [rule.update(v) for v in (1.0, 2.0, 1.0, 100.0)] == [False] * 4  # window not full yet
    rule = SigmaRule(window=4, sigma=6.0)
    for v in (1.0, 2.0, 1.0, 2.0):
        rule.update(v)
    assert not rule.is_spike(4.5)  # OLMo-core: strictly above
    assert rule.is_spike(4.5001)
    assert not rule.is_spike(-1e9)  # upward only
    assert SigmaRule(window=4, sigma=6.0, inclusive=True).is_spike(4.5) is False  # empty history
    inclusive = SigmaRule(window=4, sigma=6.0, inclusive=True)
    for v in (1.0, 2.0, 1.0, 2.0):
        inclusive.update(v)
    assert inclusive.is_spike(4.5)  # the paper's "at least"
    flat = SigmaRule(window=4, sigma=6.0)
    for v in (3.0,) * 4:
        flat.update(v)
    assert not flat.is_spike(1e6)  # std < 1e-10: never
    assert flat.update(1e6) is False and len(flat.history) == 4  # the window slides


def test_step_spikes_if_either_signal_spikes():
    """Guards against a detector that watches only the loss (the paper's spikes are mostly grad norms)."""
    det = OLMoCoreSpikeDetector(window=4, sigma=6.0, rate_window=3)
    for v in (1.0, 2.0, 1.0, 2.0):
        assert not det.update(v, v)
    assert det.update(1.5, 50.0) and det.last == (False, True)
    assert det.update(50.0, 1.5) and det.last == (True, False)
    assert det.rate.recent_rate == pytest.approx(2 / 3)
    assert det.total_rate == pytest.approx(2 / 6)


def _sequence(n=700, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        loss, norm = 3.0 - i * 1e-3 + rng.gauss(0, 0.01), 1.0 + rng.gauss(0, 0.05)
        if i in (150, 151, 400):
            loss += 1.0
        if i in (260, 520):
            norm *= 20
        out.append((loss, norm))
    return out


def test_matches_olmo_core_stability_monitor():
    """Guards against any divergence from OLMo-core's rule: same per-step decisions and the same logged
    recent and total spike rates, exactly, over 700 steps with loss and grad-norm spikes."""
    ref = StabilityMonitorCallback(window_size=32, rolling_window=100, threshold_std=6.0)
    det = OLMoCoreSpikeDetector(window=32, sigma=6.0, rate_window=100)
    spikes = []
    for step, (loss, norm) in enumerate(_sequence()):
        metrics = {ref.loss_metric_name: loss, ref.grad_norm_metric_name: norm}
        ref.pre_log_metrics(step, metrics)
        spike = det.update(loss, norm)
        assert spike == ref._spike_history[-1]
        assert metrics.get("spike/SpikeScore") == det.rate.recent_rate
        assert metrics.get("spike/SpikeScore (total)") == det.total_rate
        spikes += [step] if spike else []
    assert spikes == [150, 260, 400, 520]  # 151 follows a spike that widened the std


def test_state_dict_resume_continues_exactly():
    """Guards against a resumed run whose history or rates restart (the checkpoint must carry them)."""
    seq = _sequence(300)
    straight = OLMoCoreSpikeDetector(window=32, rate_window=50)
    a = [straight.update(*v) for v in seq]
    first = OLMoCoreSpikeDetector(window=32, rate_window=50)
    b = [first.update(*v) for v in seq[:170]]
    resumed = OLMoCoreSpikeDetector(window=32, rate_window=50)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    b += [resumed.update(*v) for v in seq[170:]]
    assert a == b and any(a)
    assert (resumed.rate.recent_rate, resumed.total_rate) == (straight.rate.recent_rate, straight.total_rate)
    assert list(resumed.loss.history) == list(straight.loss.history)


def test_paper_score_by_hand():
    """Guards against counting unjudged warm-up values or using a strict threshold for the paper's score:
    after 10 values alternating 1/2 (mean 1.5, std 0.5), 5.0 is exactly 7 sigma above and counts."""
    score = PaperSpikeScore(window=10, sigma=7.0)
    for i in range(10):
        score.update(1.0 + i % 2)
    assert score.score is None
    assert score.update(5.0)
    assert not score.update(1.0)  # the spike is in the history now
    assert (score.judged, score.spikes, score.score) == (2, 1, 0.5)
    restored = PaperSpikeScore(window=10, sigma=7.0)
    restored.load_state_dict(score.state_dict())
    assert restored.score == 0.5 and list(restored.rule.history) == list(score.rule.history)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 8, "sigma": 6.0, "warmup": 16}, r"window \(8\) must be >= warmup \(16\)"),
        ({"window": 8, "sigma": 0.0}, "sigma must be > 0"),
        ({"window": 8, "sigma": -1.0}, "sigma must be > 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    """Guards against a detector that silently never fires (window below warm-up) or always fires."""
    with pytest.raises(ValueError, match=match):
        SigmaRule(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 8, "warmup": 16}, r"SpikeMonitor: window \(8\) must be >= warmup \(16\)"),
        ({"sigma": 0.0}, "SpikeMonitor: sigma must be > 0"),
        ({"paper_sigma": -7.0}, "SpikeMonitor: paper_sigma must be > 0"),
    ],
)
def test_spike_monitor_names_its_bad_argument(kwargs, match):
    """Guards against a monitor that silently never fires or always fires."""
    from olmo2_lit.callbacks.spike_monitor import SpikeMonitor

    with pytest.raises(ValueError, match=match):
        SpikeMonitor(**kwargs)
