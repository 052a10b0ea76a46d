"""A test-only schedule selected by class_path: the peak LR, held at 0 over a window of steps.

Not monotone (it trains again after the window), so it tells a zero-LR check that reads the steps left
in a fit from one that reads past the fit's end (``tests/callbacks/test_zero_lr.py``).
"""

from __future__ import annotations

from olmo2_lit.train.schedules import Schedule


class PausedConstant(Schedule):
    """1 (the peak LR) at every step, except 0 for ``start <= t < end``.

    Args:
        start: first step at 0.
        end: first step back at the peak.
    """

    def __init__(self, *, start: int, end: int) -> None:
        super().__init__(units="steps")
        self.start, self.end = start, end

    def factor(self, t: float) -> float:
        return 0.0 if self.start <= t < self.end else 1.0
