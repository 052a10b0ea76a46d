"""A fit's start-up cost from the times its first two optimizer steps ended (``TokenThroughput`` logs it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartupTimes:
    """What the first optimizer step cost beyond a normal one: ``torch.compile``'s compilation (with
    ``model.parallelize.compile: true``) above all, and warm-up. Times in seconds, on any one clock.

    Args:
        started: when training started.
        first_end: when the first optimizer step ended.
        second_end: when the second ended.
    """

    started: float
    first_end: float
    second_end: float

    @property
    def first_step_s(self) -> float:
        """From the start of training to the end of the first step."""
        return self.first_end - self.started

    @property
    def second_step_s(self) -> float:
        return self.second_end - self.first_end

    @property
    def startup_s(self) -> float:
        """The first step's time less the second's; 0 when the second was as slow or slower (a
        difference within timing noise, not a negative cost)."""
        return max(0.0, self.first_step_s - self.second_step_s)

    def line(self) -> str:
        """The line printed at the end of the second step."""
        steps = (
            f"start-up: the first optimizer step took {self.first_step_s:.1f} s, "
            f"the second {self.second_step_s:.2f} s"
        )
        if round(self.startup_s, 1) == 0:
            return f"{steps}; no measurable time went to compilation or warm-up"
        return f"{steps}; ~{self.startup_s:.1f} s went to compilation and warm-up"
