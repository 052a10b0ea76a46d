"""Spread over seeds: mean, sample std and a 95% Student-t interval; TensorBoard's smoothing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


def t_cdf(t: float, df: int) -> float:
    """Student's t CDF for an integer ``df``, in closed form (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c * c * (2 * k) / (2 * k + 1)
            total += term
        a = 2 / math.pi * (theta + s * c * total)
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c * c * (2 * k - 1) / (2 * k)
            total += term
        a = s * total
    return (1 + a) / 2


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom, by bisection."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Spread:
    """n values summarized: mean, sample std (n - 1) and the 95% t interval of the mean."""

    n: int
    mean: float
    std: Optional[float]
    low: Optional[float]
    high: Optional[float]

    def text(self, digits: int = 4) -> str:
        if self.n == 0:
            return "–"
        if self.std is None:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} ± {self.std:.2g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def spread(values: list[float]) -> Spread:
    """Mean, sample std and the 95% Student-t interval ``mean ± t(0.975, n-1) std / sqrt(n)``."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    n = len(x)
    if n == 0:
        return Spread(0, math.nan, None, None, None)
    mean = float(x.mean())
    if n == 1:
        return Spread(1, mean, None, None, None)
    std = float(x.std(ddof=1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, mean - half, mean + half)


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's scalar smoothing: a debiased exponential moving average (``weight`` 0: none)."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {weight}")
    if weight == 0 or len(values) == 0:
        return values
    out, last = np.empty_like(values, dtype=np.float64), 0.0
    for i, v in enumerate(values):
        last = last * weight + (1 - weight) * v
        out[i] = last / (1 - weight ** (i + 1))
    return out
