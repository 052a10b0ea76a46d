import sys
from pathlib import Path

# the training tests' helpers (tiny_args, make_shards, scalars)
sys.path.insert(0, str(Path(__file__).parents[1] / "training"))

import pytest  # noqa: E402
from training_helpers import make_shards  # noqa: E402


@pytest.fixture
def shards(tmp_path_factory):
    """Two raw uint16 shards with a learnable pattern (no sidecar, like OLMo's own files)."""
    return make_shards(tmp_path_factory.mktemp("shards"))
