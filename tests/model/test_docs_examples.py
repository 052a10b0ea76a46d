"""The component examples of docs/custom_components.md, copied out of the page, do what the page says."""

import math
import re
import sys
from pathlib import Path

import pytest
import torch

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token

DOCS = Path(__file__).parents[2] / "docs" / "custom_components.md"


@pytest.fixture
def my_lab(tmp_path, monkeypatch):
    """Every ```python block of docs/custom_components.md whose first line is ``# my_lab/<file>.py``, written
    to a ``my_lab`` package on sys.path."""
    blocks = re.findall(r"```python\n# (my_lab/\w+\.py)\n(.*?)```", DOCS.read_text(), re.S)
    assert {path for path, _ in blocks} >= {"my_lab/blocks.py", "my_lab/mlps.py", "my_lab/attention.py"}
    (tmp_path / "my_lab").mkdir()
    (tmp_path / "my_lab" / "__init__.py").write_text("")
    for path, code in blocks:
        (tmp_path / path).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [m for m in sys.modules if m == "my_lab" or m.startswith("my_lab.")]:
        del sys.modules[name]


def test_docs_four_matrix_mlp_flops_and_init(my_lab):
    """Guards the docs' own-MLP example: with only ``output_projections`` written, its FLOPs count
    its four matmuls and the scaled init shrinks exactly its ``down`` projection with depth."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(d_model=128, n_layers=2, mlp_hidden=256, mlp="my_lab.mlps.FourMatrixMLP")
    d, h = cfg.d_model, cfg.mlp_hidden
    attention = 6 * 4 * d * d + 12 * d * 64
    mlp = 6 * (d * h + d * h + h * h + h * d)
    assert flops_per_token(cfg, 64) == cfg.n_layers * (attention + mlp) + 6 * d * cfg.padded_vocab_size
    model = Transformer(cfg.replace(init="olmo0424_scaled"))
    for layer, block in enumerate(model.blocks):
        mlp_module = block.feed_forward
        down = mlp_module.down.weight.std().item() / math.sqrt(1 / (2 * h * (layer + 1)))
        gate = mlp_module.gate.weight.std().item() / math.sqrt(1 / d)
        mix = mlp_module.mix.weight.std().item() / math.sqrt(1 / h)
        for ratio in (down, gate, mix):  # truncated at 3 sigma: 0.9866; noise < 1% at 32k samples
            assert abs(ratio - 0.9866) < 0.02, (layer, down, gate, mix)


def test_docs_parallel_block_runs(my_lab):
    """Guards the docs' own-block example on one process: it builds, runs, and trains every
    parameter (the 2-process DDP run is tests/training/test_docs_block_ddp.py)."""
    cfg = ModelConfig.tiny(block="my_lab.blocks.ParallelBlock")
    model = Transformer(cfg)
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    model(ids).logsumexp(-1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_docs_sliding_window_attention(my_lab):
    """Guards the docs' own-attention example: with a window as long as the sequence it is SDPA's
    causal attention; with a short one, a query's output ignores keys further back than the window,
    and still never sees a later key."""
    from my_lab.attention import SlidingWindowAttention

    from olmo2_lit.model.attention import SDPABackend

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 40, 8, generator=g) for _ in range(3))
    backend = SlidingWindowAttention()
    backend.window = 40
    torch.testing.assert_close(backend(q, k, v, None), SDPABackend()(q, k, v, None))
    backend.window = 8
    out = backend(q, k, v, None)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, :5], v2[:, :, :5] = 0.0, 0.0  # change keys 0-4: queries from 12 on see none of them
    torch.testing.assert_close(backend(q, k2, v2, None)[:, :, 12:], out[:, :, 12:])
    assert not torch.allclose(backend(q, k2, v2, None)[:, :, 5:12], out[:, :, 5:12])
    k3 = k.clone()
    k3[:, :, 30:] = 0.0  # later keys never matter
    torch.testing.assert_close(backend(q, k3, v, None)[:, :, :30], out[:, :, :30])
    cfg = ModelConfig.tiny(attention="my_lab.attention.SlidingWindowAttention")
    ids = torch.randint(0, 256, (2, 16), generator=g)
    assert Transformer(cfg)(ids).shape == (2, 16, cfg.padded_vocab_size)
