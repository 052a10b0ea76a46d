"""OLMo 2's repeated n-gram detector, vectorized with numpy.

OLMo 2 traced gradient-norm spikes to documents with long runs of one short n-gram, and removes any
document with **>= 32 consecutive repeats of a period of 1-13 tokens**; the same rule, applied at train
time, masks the labels of whole instances (OLMO2.md §3.2; OL ``instance_filter: {repetition_min_period: 1,
repetition_max_period: 13, repetition_max_count: 32}``).

OC's ``find_periodic_sequences`` reshapes the ids into rows of ``period`` and finds runs of equal rows.
This module compares the array with itself shifted by ``period`` instead: a run of ``k`` equal pairs
means ``k + period`` tokens repeat with that period. Both count repeats the same way, and both need
only a few vectorized passes per period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_PERIOD = 1
MAX_PERIOD = 13
MIN_REPEATS = 32


@dataclass(frozen=True)
class Repetition:
    """A maximal span ``tokens[start : start + length]`` that repeats with ``period``.

    ``repeats = length // period`` full copies of the n-gram (a trailing partial copy is not counted).
    """

    start: int
    length: int
    period: int

    @property
    def repeats(self) -> int:
        return self.length // self.period


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def find_repetitions(
    tokens: np.ndarray,
    *,
    min_period: int = MIN_PERIOD,
    max_period: int = MAX_PERIOD,
    min_repeats: int = MIN_REPEATS,
) -> list[Repetition]:
    """Every maximal span with at least ``min_repeats`` repeats of a period in ``[min_period, max_period]``.

    A span is reported once per period that fits it, so 64 equal tokens appear with period 1 (64
    repeats) and with period 2 (32 repeats).
    """
    if min_period < 1 or max_period < min_period or min_repeats < 2:
        raise ValueError(
            f"need 1 <= min_period <= max_period and min_repeats >= 2, got "
            f"{min_period}, {max_period}, {min_repeats}"
        )
    tokens = np.asarray(tokens)
    found = []
    for period in range(min_period, min(max_period, len(tokens) // min_repeats) + 1):
        starts, run_lengths = _true_runs(tokens[period:] == tokens[:-period])
        lengths = run_lengths + period  # k equal pairs at shift p: k + p tokens with period p
        keep = lengths // period >= min_repeats
        found += [Repetition(int(s), int(n), period) for s, n in zip(starts[keep], lengths[keep])]
    return found


def is_repetitive(
    tokens: np.ndarray,
    *,
    min_period: int = MIN_PERIOD,
    max_period: int = MAX_PERIOD,
    min_repeats: int = MIN_REPEATS,
) -> bool:
    """True when ``tokens`` holds a span that OLMo 2's rule removes."""
    return bool(
        find_repetitions(tokens, min_period=min_period, max_period=max_period, min_repeats=min_repeats)
    )


def flag_repetitive(
    segments: Sequence[np.ndarray],
    *,
    min_period: int = MIN_PERIOD,
    max_period: int = MAX_PERIOD,
    min_repeats: int = MIN_REPEATS,
) -> np.ndarray:
    """``is_repetitive`` for many segments (documents, or the rows of a batch) in one vectorized pass.

    The segments are joined with a distinct negative sentinel after each, which equals no token and no
    other sentinel, so no run can cross from one segment into the next.

    Returns:
        bool array, one flag per segment.
    """
    flags = np.zeros(len(segments), dtype=bool)
    if not len(segments):
        return flags
    lengths = np.array([len(s) for s in segments], dtype=np.int64)
    pieces = []
    for i, segment in enumerate(segments):
        pieces += [np.asarray(segment, dtype=np.int64), np.array([-1 - i], dtype=np.int64)]
    joined = np.concatenate(pieces)
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    hits = find_repetitions(joined, min_period=min_period, max_period=max_period, min_repeats=min_repeats)
    if hits:
        flags[np.searchsorted(starts, [h.start for h in hits], side="right") - 1] = True
    return flags
