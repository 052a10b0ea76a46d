"""``olmo2_lit/research/stats.py`` against hand computations: TensorBoard's debiased smoothing of the
first values, and the closed-form Student t CDF for odd and even degrees of freedom against the t
density integrated numerically (Simpson's rule with ``math.gamma``), Cauchy's CDF and the printed
0.975 quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from olmo2_lit.research.stats import smooth, t_cdf, t_quantile


def test_smoothing_is_debiased_from_the_first_value():
    # weight 0.5 on [1, 2, 3]: EMA from 0 is 0.5, 1.25, 2.125; debiased by 1 - 0.5^(i+1): 1, 5/3, 17/7
    got = smooth(np.array([1.0, 2.0, 3.0]), 0.5)
    np.testing.assert_allclose(got, [1.0, 5 / 3, 17 / 7], rtol=1e-12)
    # a constant curve stays constant from its first value (not pulled toward 0 by the EMA's start)
    np.testing.assert_allclose(smooth(np.full(5, 4.0), 0.9), np.full(5, 4.0), rtol=1e-12)


def _t_cdf_by_integration(t: float, df: int, intervals: int = 2000) -> float:
    """0.5 + the integral of Student's t density from 0 to t (t >= 0), by Simpson's rule."""
    norm = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def pdf(x: float) -> float:
        return norm * (1 + x * x / df) ** (-(df + 1) / 2)

    h = t / intervals
    total = pdf(0.0) + pdf(t)
    total += sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, intervals))
    return 0.5 + total * h / 3


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 7, 9])
@pytest.mark.parametrize("t", [0.3, 1.0, 2.0, 4.5])
def test_t_cdf_equals_the_integrated_density(df, t):
    assert t_cdf(t, df) == pytest.approx(_t_cdf_by_integration(t, df), abs=1e-10)
    assert t_cdf(-t, df) == pytest.approx(1 - _t_cdf_by_integration(t, df), abs=1e-10)


@pytest.mark.parametrize("t", [-3.0, -0.5, 0.0, 0.7, 2.0, 10.0])
def test_t_cdf_closed_forms_for_df_1_and_3(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)  # Cauchy
    s3 = math.sqrt(3)
    assert t_cdf(t, 3) == pytest.approx(0.5 + (math.atan(t / s3) + t * s3 / (t * t + 3)) / math.pi, abs=1e-14)


def test_t_quantiles_equal_the_printed_table():
    table = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836, 7: 2.364624252}
    for df, q in table.items():
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-8)


def test_t_cdf_equals_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 3, 5, 7, 8, 11):
        for t in (0.1, 1.5, 3.0):
            assert t_cdf(t, df) == pytest.approx(float(stats.t.cdf(t, df)), abs=1e-12)
