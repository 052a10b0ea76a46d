"""A resume goes on with the checkpoint's data seed, as OLMo-core does, and says so when the configured
one differs (``olmo2_lit/data/resume.py``): the order of the rest of the run is the saved run's."""

import warnings

import pytest

from olmo2_lit.data.resume import saved_seed


@pytest.mark.parametrize("configured", [3, 4, 0])
def test_the_checkpoints_seed_is_kept_and_a_change_is_named(configured):
    state = {"seed": 3, "sequence_length": 64}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert saved_seed(state, seed=configured, sequence_length=64) == 3
    messages = [str(w.message) for w in caught]
    if configured == 3:
        assert messages == []
    else:
        assert messages == [f"the checkpoint's data seed 3 replaces the configured seed {configured}"]
