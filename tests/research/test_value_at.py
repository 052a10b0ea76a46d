"""``compare``'s value of a run at a table column (``value_at``): its last value logged at or before the
position; None before its first step and past its last (the run has not got there)."""

from __future__ import annotations

import numpy as np
import pytest

from olmo2_lit.research.compare import value_at

XS, VALUES = np.array([0.0, 10.0, 20.0]), np.array([5.0, 4.0, 3.0])


@pytest.mark.parametrize(
    "position, expected",
    [(-1, None), (0, 5.0), (9, 5.0), (10, 4.0), (15, 4.0), (20, 3.0), (21, None), (None, 3.0)],
)
def test_value_at_a_position(position, expected):
    assert value_at(XS, VALUES, position) == expected


def test_value_at_the_exact_last_step_of_a_one_step_run():
    assert value_at(np.array([7.0]), np.array([2.5]), 7) == 2.5
    assert value_at(np.array([7.0]), np.array([2.5]), 8) is None
    assert value_at(np.array([]), np.array([]), 0) is None
