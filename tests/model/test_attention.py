import importlib.util
import re
import sys
import types

import pytest
import torch

from olmo2_lit.model import ATTENTION, ModelConfig, Transformer
from olmo2_lit.model.attention import document_ids


def _pair(attention, **kw):
    ref = Transformer(ModelConfig.tiny(attention="eager", **kw))
    other = Transformer(ModelConfig.tiny(attention=attention, **kw))
    other.load_state_dict(ref.state_dict())
    return ref, other


def test_backend_registry():
    """Guards the backend names YAML uses and sdpa as the default."""
    assert {"sdpa", "flex", "xformers", "eager"} <= set(ATTENTION.names())
    assert ModelConfig().attention == "sdpa"


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_sdpa_matches_eager(n_kv_heads):
    """Guards SDPA (MHA, GQA, MQA; with and without document masking) against the eager fp32
    reference, to float32 rounding."""
    ref, sdpa = _pair("sdpa", n_kv_heads=n_kv_heads)
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))
    doc_lens = torch.tensor([[7, 17, 0], [10, 10, 4]])
    torch.testing.assert_close(sdpa(ids), ref(ids), atol=1e-5, rtol=0)
    torch.testing.assert_close(sdpa(ids, doc_lens), ref(ids, doc_lens), atol=1e-5, rtol=0)


def test_document_ids():
    """Guards the map from zero-padded document lengths to per-position document indices."""
    ids = document_ids(torch.tensor([[2, 3, 0], [5, 0, 0]]), 5)
    assert ids.tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]


@pytest.mark.parametrize("attention", ["sdpa", "eager", "flex"])
@torch.no_grad()
def test_packed_documents_equal_separate_runs(attention):
    """Guards document masking: a packed sequence's logits equal each document run alone, and
    differ without the mask (so the mask is what makes them equal)."""
    model = Transformer(ModelConfig.tiny(attention=attention, n_kv_heads=2))
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(2))
    packed = model(ids, torch.tensor([[6, 9, 5]]))
    for start, end in ((0, 6), (6, 15), (15, 20)):
        torch.testing.assert_close(packed[:, start:end], model(ids[:, start:end]), atol=1e-5, rtol=0)
    # without the mask, the second document does see the first
    assert not torch.allclose(model(ids)[:, 6:15], model(ids[:, 6:15]), atol=1e-4)


NOT_INSTALLED = r"xformers package is not installed; `pip install olmo2_lit\[xformers\]`"
CUDA_ONLY = r"runs on CUDA only, got a tensor on cpu; use attention: sdpa"


def test_xformers_error_says_what_is_wrong_on_this_machine():
    """Guards the xformers errors against a message that fits either case: the one raised here is
    the one for this machine (not installed, or installed but on CPU), and not the other."""
    model = Transformer(ModelConfig.tiny(attention="xformers"))
    installed = importlib.util.find_spec("xformers") is not None
    right, wrong = (CUDA_ONLY, NOT_INSTALLED) if installed else (NOT_INSTALLED, CUDA_ONLY)
    with pytest.raises(RuntimeError, match=right) as err:
        model(torch.zeros(1, 4, dtype=torch.long))
    assert not re.search(wrong, str(err.value))


def test_xformers_installed_but_cpu_says_cuda_only(monkeypatch):
    """Guards the second xformers error: with the package importable (a stand-in module here, as
    xformers needs CUDA to install) a CPU tensor is refused with the CUDA-only message."""
    fake = types.ModuleType("xformers")
    fake.ops = types.ModuleType("xformers.ops")
    fake.ops.fmha = types.ModuleType("xformers.ops.fmha")
    monkeypatch.setitem(sys.modules, "xformers", fake)
    monkeypatch.setitem(sys.modules, "xformers.ops", fake.ops)
    model = Transformer(ModelConfig.tiny(attention="xformers"))
    with pytest.raises(RuntimeError, match=CUDA_ONLY) as err:
        model(torch.zeros(1, 4, dtype=torch.long))
    assert not re.search(NOT_INSTALLED, str(err.value))


@pytest.mark.requires_cuda
@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_xformers_matches_sdpa_on_cuda(n_kv_heads):
    """Guards the xformers backend (GQA layout, block-diagonal mask) against eager on CUDA."""
    pytest.importorskip("xformers.ops")
    ref, xf = _pair("xformers", n_kv_heads=n_kv_heads)
    ref, xf = ref.cuda(), xf.cuda()
    ids = torch.randint(0, 256, (2, 32), device="cuda")
    doc_lens = torch.tensor([[8, 24, 0], [16, 8, 8]], device="cuda")
    torch.testing.assert_close(xf(ids), ref(ids), atol=2e-4, rtol=0)
    torch.testing.assert_close(xf(ids, doc_lens), ref(ids, doc_lens), atol=2e-4, rtol=0)


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_flex_matches_eager_with_document_masks(n_kv_heads):
    """Guards the FlexAttention backend's block mask (causal and same-document, GQA) against the eager
    fp32 reference, and the mask shared between layers against a stale one: a second batch with other
    document boundaries must give its own result. (Forward only: torch has no CPU backward for it.)"""
    ref, flex = _pair("flex", n_kv_heads=n_kv_heads)
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(flex(ids), ref(ids), atol=1e-5, rtol=0)
        for doc_lens in (torch.tensor([[7, 17, 0], [10, 10, 4]]), torch.tensor([[20, 4, 0], [3, 3, 18]])):
            torch.testing.assert_close(flex(ids, doc_lens), ref(ids, doc_lens), atol=1e-5, rtol=0)


def test_flex_training_on_cpu_says_use_sdpa():
    """Guards against torch's bare NotImplementedError deep in a training step on CPU."""
    model = Transformer(ModelConfig.tiny(attention="flex"))
    with pytest.raises(RuntimeError, match="no backward on CPU; train with attention: sdpa"):
        model(torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.requires_cuda
def test_flex_compiled_matches_sdpa_on_cuda():
    """Guards the compiled FlexAttention kernel (the one used on GPUs) against SDPA's dense mask."""
    ref, flex = _pair("flex", n_kv_heads=2)
    sdpa = Transformer(ModelConfig.tiny(attention="sdpa", n_kv_heads=2))
    sdpa.load_state_dict(ref.state_dict())
    sdpa, flex = sdpa.cuda(), flex.cuda()
    ids = torch.randint(0, 256, (2, 256), device="cuda")
    doc_lens = torch.tensor([[100, 156, 0], [30, 200, 26]], device="cuda")
    out_sdpa, out_flex = sdpa(ids, doc_lens), flex(ids, doc_lens)
    torch.testing.assert_close(out_flex, out_sdpa, atol=2e-4, rtol=0)
    out_sdpa.square().mean().backward()
    out_flex.square().mean().backward()
    for (name, a), b in zip(sdpa.named_parameters(), flex.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=2e-4, rtol=1e-3, msg=name)
