import os

import pytest
import torch

# Two cores: keep torch from oversubscribing when pytest runs beside dataloader workers.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    if not torch.cuda.is_available():
        for item in items:
            if "requires_cuda" in item.keywords:
                item.add_marker(skip)
