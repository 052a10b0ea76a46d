import os
import tempfile

import pytest
import torch

# Token-range records (olmo2_lit/data/token_range.py) go to a fresh directory, not the user's cache.
os.environ["OLMO2_LIT_CACHE"] = tempfile.mkdtemp(prefix="olmo2_lit_cache_")

# Two cores: keep torch from oversubscribing when pytest runs beside dataloader workers.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    if not torch.cuda.is_available():
        for item in items:
            if "requires_cuda" in item.keywords:
                item.add_marker(skip)


def _slurm_cluster(tmp_path_factory, *, nodes: int):
    from slurm_cluster import SlurmCluster, missing_binaries

    missing = missing_binaries()
    if missing:  # .ci/run installs them; nothing else skips these tests
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    cluster = SlurmCluster(tmp_path_factory.mktemp(f"slurm{nodes}"), nodes=nodes, cpus=2)
    cluster.start()
    yield cluster
    cluster.stop()  # cancels leftover jobs (their processes end within KillWait), then the daemons


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node SLURM cluster on this machine (tests/slurm_cluster.py), started once per session."""
    yield from _slurm_cluster(tmp_path_factory, nodes=1)


@pytest.fixture(scope="session")
def slurm_two_nodes(tmp_path_factory):
    """A real two-node SLURM cluster: two ``slurmd`` on this machine, nodes ``<host>`` and ``<host>-n2``."""
    yield from _slurm_cluster(tmp_path_factory, nodes=2)
