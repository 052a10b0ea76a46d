import numpy as np
import pytest

from olmo2_lit.ngram import find_repetitions, flag_repetitive, is_repetitive


def _planted(ngram, repeats, *, before=50, after=50, seed=0):
    """Random ids 100..999 (never 1-13-periodic by chance at this length) around `repeats` copies."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.integers(100, 1000, before), np.tile(ngram, repeats), rng.integers(100, 1000, after)]
    )


@pytest.mark.parametrize("ngram", [[7], [1, 2], [5, 6, 7, 8, 9], list(range(20, 33))])  # periods 1, 2, 5, 13
def test_32_repeats_are_caught_and_31_are_not(ngram):
    assert is_repetitive(_planted(ngram, 32))
    assert not is_repetitive(_planted(ngram, 31))


def test_period_14_is_outside_the_rule():
    assert not is_repetitive(_planted(list(range(20, 34)), 40))
    assert is_repetitive(_planted(list(range(20, 34)), 40), max_period=14)


def test_reported_span_is_exact():
    tokens = _planted([3, 4, 5], 40, before=17)
    (hit,) = [h for h in find_repetitions(tokens) if h.period == 3]
    assert (hit.start, hit.length, hit.repeats) == (17, 120, 40)


def test_partial_trailing_copy_does_not_count_as_a_repeat():
    # 31 whole copies plus 2 of 3 tokens of a 32nd: 31 repeats, like OC's (end - start) // period
    tokens = np.concatenate([_planted([3, 4, 5], 31, after=0), [3, 4], [999]])
    assert not is_repetitive(tokens)


def test_matches_a_brute_force_count_on_random_inputs():
    rng = np.random.default_rng(0)
    for trial in range(200):
        period, repeats = int(rng.integers(1, 14)), int(rng.integers(25, 40))
        ngram = rng.integers(0, 4, period)  # a small alphabet also makes accidental runs
        tokens = np.concatenate(
            [
                rng.integers(0, 4, rng.integers(0, 60)),
                np.tile(ngram, repeats),
                rng.integers(0, 4, rng.integers(0, 60)),
            ]
        )
        assert is_repetitive(tokens) == _brute_force(tokens), trial


def _brute_force(tokens, min_repeats=32):
    n = len(tokens)
    for p in range(1, 14):
        for start in range(n):
            length = p
            while start + length < n and tokens[start + length] == tokens[start + length - p]:
                length += 1
            if length // p >= min_repeats:
                return True
    return False


def test_flags_segments_and_no_run_crosses_a_segment_boundary():
    clean = np.arange(100, 200)
    half = np.full(20, 7)  # 20 + 20 equal tokens would be 40 repeats if joined
    segments = [clean, half, half, _planted([1, 2], 32), clean]
    np.testing.assert_array_equal(flag_repetitive(segments), [False, False, False, True, False])
    rows = np.stack([np.arange(64), np.full(64, 9)])
    np.testing.assert_array_equal(flag_repetitive(list(rows)), [False, True])
