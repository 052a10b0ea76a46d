import sys
from pathlib import Path

import pytest

# the training tests' shards and tiny-run helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from training_helpers import make_shards  # noqa: E402


@pytest.fixture
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))
