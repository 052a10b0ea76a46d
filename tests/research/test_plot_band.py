"""What ``compare``'s plots draw per variant (``plot_runs``), read from the arrays it hands to
``envelope_line`` and ``envelope_band`` (recorded on the way through, then drawn as usual): the mean over
seeds on the steps every seed covers, and a band of ± the sample std (n - 1), by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from olmo2_lit.research import plots
from olmo2_lit.research.compare import Loaded
from olmo2_lit.research.runs import RunRef

TAG = "train/ce_loss"


def _drawn(monkeypatch, tmp_path, curves: list[tuple[list[float], list[float]]]):
    """Plot one variant with a seed per curve; return the (x, y) line and (x, lo, hi) band drawn."""
    pytest.importorskip("matplotlib")
    drawn = {}
    line, band = plots.envelope_line, plots.envelope_band
    monkeypatch.setattr(plots, "envelope_line", lambda *a: drawn.setdefault("line", line(*a)))
    monkeypatch.setattr(plots, "envelope_band", lambda *a: drawn.setdefault("band", band(*a)))
    runs = [RunRef(tmp_path / f"seed{i}", "a", i) for i in range(len(curves))]
    series = [{TAG: (np.array(x, dtype=float), np.array(y, dtype=float))} for x, y in curves]
    images = plots.plot_runs(Loaded(runs, series, [TAG], [], "step"), [TAG], Path(tmp_path))
    assert images[TAG].stat().st_size > 0
    return drawn["line"], drawn.get("band")


def test_band_is_mean_plus_minus_the_sample_std(monkeypatch, tmp_path):
    x = [0, 1, 2]
    (lx, mean), (bx, lo, hi) = _drawn(monkeypatch, tmp_path, [(x, [0, 0, 0]), (x, [2, 4, 6])])
    # two seeds a, b: mean (a + b) / 2, sample std |a - b| / sqrt(2) (population std would be |a - b| / 2)
    std = np.array([2, 4, 6]) / math.sqrt(2)
    np.testing.assert_allclose(lx, x)
    np.testing.assert_allclose(mean, [1, 2, 3])
    np.testing.assert_allclose(bx, x)
    np.testing.assert_allclose(lo, np.array([1, 2, 3]) - std)
    np.testing.assert_allclose(hi, np.array([1, 2, 3]) + std)


def test_three_seeds_band_by_hand(monkeypatch, tmp_path):
    x = [10, 20]
    _, (_, lo, hi) = _drawn(monkeypatch, tmp_path, [(x, [1, 0]), (x, [2, 0]), (x, [6, 3])])
    # step 10: values 1, 2, 6: mean 3, squares 4 + 1 + 9 = 14 over n - 1 = 2 -> std sqrt(7)
    # step 20: values 0, 0, 3: mean 1, squares 1 + 1 + 4 = 6 over 2 -> std sqrt(3)
    np.testing.assert_allclose(lo, [3 - math.sqrt(7), 1 - math.sqrt(3)])
    np.testing.assert_allclose(hi, [3 + math.sqrt(7), 1 + math.sqrt(3)])


def test_mean_curve_covers_only_the_steps_every_seed_covers(monkeypatch, tmp_path):
    # seed 0 logged steps 0..4, seed 1 steps 2..6 (every other one): the mean is drawn on 2..4 only, on
    # the union of their steps there, each seed interpolated linearly between its own steps
    a = ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    b = ([2, 4, 6], [10, 20, 30])
    (lx, mean), (bx, _, _) = _drawn(monkeypatch, tmp_path, [a, b])
    np.testing.assert_allclose(lx, [2, 3, 4])
    np.testing.assert_allclose(mean, [(2 + 10) / 2, (3 + 15) / 2, (4 + 20) / 2])
    np.testing.assert_allclose(bx, [2, 3, 4])


def test_one_seed_has_no_band(monkeypatch, tmp_path):
    (lx, mean), band = _drawn(monkeypatch, tmp_path, [([0, 5], [1.0, 2.0])])
    assert band is None
    np.testing.assert_allclose(lx, [0, 5])
    np.testing.assert_allclose(mean, [1.0, 2.0])
