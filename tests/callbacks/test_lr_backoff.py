"""LR backoff's arguments (its behaviour in a run is tested in test_spike_monitor.py)."""

import pytest

from olmo2_lit.callbacks.lr_backoff import LRBackoff


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5, -0.5])
def test_factor_outside_unit_interval_is_refused(factor):
    """Guards against a 'backoff' that stops training (0) or raises the LR (>= 1)."""
    with pytest.raises(ValueError, match=r"LRBackoff: factor must lie in \(0, 1\)"):
        LRBackoff(factor=factor)


def test_window_shorter_than_spike_count_is_refused():
    """Guards against a backoff that can never trigger."""
    with pytest.raises(ValueError, match="spikes <= window"):
        LRBackoff(spikes=3, window=2)
