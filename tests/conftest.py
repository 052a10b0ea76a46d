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
