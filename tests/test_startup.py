"""Start-up time from the end times of a fit's first two optimizer steps (``olmo2_lit/train/startup.py``),
on hand-made timestamps: no test here depends on how fast the machine is.

Guards against a start-up that is not the first step's excess over a normal step (the first step's time
alone, or measured from the wrong start), and a negative time (``~-0.0 s went to compilation``) when the
second step happens to be as slow or slower than the first.
"""

import re

import pytest

from olmo2_lit.train.startup import StartupTimes


def test_startup_is_the_first_steps_excess_over_the_second():
    times = StartupTimes(started=100.0, first_end=112.5, second_end=113.0)
    assert (times.first_step_s, times.second_step_s, times.startup_s) == (12.5, 0.5, 12.0)
    assert times.line() == (
        "start-up: the first optimizer step took 12.5 s, the second 0.50 s; "
        "~12.0 s went to compilation and warm-up"
    )


@pytest.mark.parametrize(
    "second, startup, said",
    [
        (0.5, 0.5, "~0.5 s went to compilation and warm-up"),  # one step's excess
        (0.9375, 0.0625, "~0.1 s went to compilation and warm-up"),  # the smallest that prints as 0.1
        (0.96875, 0.03125, "no measurable time went to compilation or warm-up"),  # prints as 0.0
        (1.0, 0.0, "no measurable time went to compilation or warm-up"),  # as fast as the first
        (1.5, 0.0, "no measurable time went to compilation or warm-up"),  # slower: 0, never negative
    ],
)
def test_startup_near_zero_is_never_negative(second, startup, said):
    times = StartupTimes(started=0.0, first_end=1.0, second_end=1.0 + second)
    assert times.startup_s == startup
    assert times.line().endswith(f"; {said}") and not re.search(r"-\d", times.line())
