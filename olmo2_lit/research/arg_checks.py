"""Checks of ``compare``'s and ``report``'s numeric arguments and ``--out``, made before any event file
is read or any output written (so a typo ends in one line naming the flag, not a traceback from the
spike rule after the runs were loaded, or an empty output directory)."""

from __future__ import annotations

from pathlib import Path

from olmo2_lit.errors import ConfigError


def check_spike_rule(window_flag: str, window: int, sigma_flag: str, sigma: float) -> None:
    """A sigma rule needs a window of two or more previous values and a positive sigma."""
    if window < 2:
        raise ConfigError(f"--{window_flag} must be >= 2 (a std needs two previous values), got {window}")
    if not sigma > 0:
        raise ConfigError(f"--{sigma_flag} must be > 0 (standard deviations above the mean), got {sigma}")


def check_at_least(flag: str, value: int, minimum: int, meaning: str) -> None:
    """``--flag`` must be ``>= minimum``; ``meaning`` says what it counts."""
    if value < minimum:
        raise ConfigError(f"--{flag} must be >= {minimum} ({meaning}), got {value}")


def check_out_dir(out: Path) -> None:
    """``--out`` is a directory to write into: refuse an existing file there."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; pass a directory to write into")
