import pytest
from training_helpers import make_shards


@pytest.fixture
def shards(tmp_path_factory):
    """Two raw uint16 shards with a learnable pattern (no sidecar, like OLMo's own files)."""
    return make_shards(tmp_path_factory.mktemp("shards"))
