import sys
from pathlib import Path

import pytest

# the training and callback tests' helpers: tiny CLI argument lists, raw token shards, callback YAML layers,
# and tests/ itself for the schedule helper
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "callbacks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/schedule_helpers.py

from training_helpers import make_shards  # noqa: E402


@pytest.fixture
def shards(tmp_path_factory):
    """Two raw uint16 shards with a learnable pattern (no sidecar, like OLMo's own files)."""
    return make_shards(tmp_path_factory.mktemp("shards"))
