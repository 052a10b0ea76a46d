"""Every registered block, attention backend, norm and MLP compiles as one graph (``fullgraph=True``) and
gives the eager output and gradients, so no graph break slips into the per-block compile that training
uses on GPUs (``model.parallelize.compile``).

Compiled with dynamo and AOTAutograd (``aot_eager``): a graph break is dynamo's and the backward graph is
AOTAutograd's whatever the backend, and this skips inductor's code generation (~25 s per variant on
2 cores); ``tests/test_lit_module.py`` runs inductor itself once. A frame counter shows that the block was
compiled, not silently run eagerly after dynamo's recompile limit.
"""

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from olmo2_lit.model import ATTENTION, BLOCKS, MLPS, NORMS, ModelConfig, Transformer

VARIANTS = (
    [dict(block=name) for name in BLOCKS.names()]
    + [dict(attention=name) for name in ATTENTION.names() if name not in ("sdpa", "xformers")]
    + [dict(norm=name) for name in NORMS.names() if name != "rms_norm"]
    + [dict(mlp=name) for name in MLPS.names() if name != "swiglu"]
    + [dict(n_kv_heads=2), dict(qk_norm=False)]
)
# Document masking (doc_lens) only reaches the attention backend: its two CPU backends with documents.
CASES = [(o, False) for o in VARIANTS] + [(dict(), True), (dict(attention="flex"), True)]
# xformers: CUDA only (its kernels are not traced by dynamo; CUDA tests in test_attention.py).


def _block_and_inputs(overrides: dict):
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(n_layers=1, **overrides)
    model = Transformer(cfg)
    x = torch.randn(2, 16, cfg.d_model, generator=torch.Generator().manual_seed(1), requires_grad=True)
    doc_lens = torch.tensor([[5, 11], [16, 0]])
    return model.blocks[0], model.rope, x, doc_lens


def _grads(block, x, out):
    out.square().sum().backward()
    return [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]


@pytest.mark.parametrize(
    "overrides, with_docs",
    CASES,
    ids=[
        "-".join([f"{k}={v}" for k, v in o.items()] + (["documents"] if d else [])) or "default"
        for o, d in CASES
    ],
)
def test_block_compiles_as_one_graph_and_matches_eager(overrides, with_docs):
    block, rope, x, doc_lens = _block_and_inputs(overrides)
    doc_lens = doc_lens if with_docs else None
    backward = overrides.get("attention") != "flex"  # torch's FlexAttention has no backward on CPU
    torch._dynamo.reset()  # a fresh recompile budget: guards on each new block would exhaust it
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(block, backend=counter, fullgraph=True)
    with torch.set_grad_enabled(backward):
        eager_out = block(x, rope, doc_lens)
        eager_grads = _grads(block, x, eager_out) if backward else []
        block.zero_grad(), x.grad.zero_() if backward else None
        compiled_out = compiled(x, rope, doc_lens)
        compiled_grads = _grads(block, x, compiled_out) if backward else []
    assert counter.frame_count == 1  # one graph: compiled, and without a break
    torch.testing.assert_close(compiled_out, eager_out, atol=1e-5, rtol=1e-5)
    for got, want in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
