import sys
from pathlib import Path

import pytest

# The training tests' helpers (tiny CLI args, shards, TensorBoard reader) serve these runs too.
sys.path.insert(0, str(Path(__file__).parents[1] / "training"))
from training_helpers import make_shards  # noqa: E402


@pytest.fixture
def shards(tmp_path_factory):
    """Two raw uint16 shards with a learnable pattern."""
    return make_shards(tmp_path_factory.mktemp("shards"))
