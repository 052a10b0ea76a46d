"""Long curves are drawn by their envelope (olmo2_lit/research/plots.py): every spike keeps its height and
step, the band covers every point's band, and short curves are drawn as they are."""

from __future__ import annotations

import numpy as np

from olmo2_lit.research.plots import MAX_BUCKETS, envelope_band, envelope_line


def test_a_long_curve_keeps_its_spikes_and_dips_in_step_order():
    rng = np.random.default_rng(0)
    x = np.arange(10 * MAX_BUCKETS) * 3
    y = rng.standard_normal(len(x))
    y[1234], y[777], y[len(x) - 1] = 50.0, -40.0, 30.0
    ex, ey = envelope_line(x, y)
    assert len(ex) <= 2 * MAX_BUCKETS
    assert np.all(np.diff(ex) >= 0)
    assert (ex[np.argmax(ey)], ey.max()) == (x[1234], 50.0)
    assert (ex[np.argmin(ey)], ey.min()) == (x[777], -40.0)
    assert (ex[-1], ey[-1]) == (x[-1], 30.0)
    # every kept point is a real point of the curve
    assert np.array_equal(ey, y[np.searchsorted(x, ex)])


def test_a_band_covers_every_point_of_its_run():
    rng = np.random.default_rng(1)
    n = 5 * MAX_BUCKETS + 7  # runs of unequal length
    x = np.arange(n)
    mid = rng.standard_normal(n)
    lo, hi = mid - rng.random(n), mid + rng.random(n)
    bx, blo, bhi = envelope_band(x, lo, hi)
    assert len(bx) <= MAX_BUCKETS and bx[0] == 0
    run = np.searchsorted(bx, x, side="right") - 1  # the run each point belongs to
    assert np.all(blo[run] <= lo) and np.all(bhi[run] >= hi)
    assert blo.min() == lo.min() and bhi.max() == hi.max()


def test_short_curves_are_drawn_as_they_are():
    x = np.arange(2 * MAX_BUCKETS)
    y = np.sin(x)
    assert envelope_line(x, y)[1] is y
    assert envelope_band(x, y - 1, y + 1)[0] is x
    assert (
        len(envelope_line(np.arange(2 * MAX_BUCKETS + 1), np.zeros(2 * MAX_BUCKETS + 1))[0])
        == 2 * MAX_BUCKETS
    )
