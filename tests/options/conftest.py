import sys
from pathlib import Path

import pytest

# the training tests' helpers: tiny CLI argument lists and raw token shards
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from training_helpers import make_shards  # noqa: E402


@pytest.fixture
def shards(tmp_path_factory):
    """Two raw uint16 shards with a learnable pattern (no sidecar, like OLMo's own files)."""
    return make_shards(tmp_path_factory.mktemp("shards"))
