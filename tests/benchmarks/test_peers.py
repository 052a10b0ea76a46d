"""The peers of benchmarks/bench_model.py compute our model's function, the check that the benchmark
runs before timing catches one that does not, and the memory counter sees an allocation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from peak_memory import PeakMemory  # noqa: E402
from peers import PEERS, available_peers, check_logits  # noqa: E402

from olmo2_lit.model import ModelConfig, Transformer  # noqa: E402

# GQA (2 kv heads) so the OLMo-core mapping of n_kv_heads is exercised too.
CFG = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden=96, vocab_size=300)


def _setup():
    torch.manual_seed(0)
    weights = Transformer(CFG).state_dict()
    ids = torch.randint(0, CFG.vocab_size, (2, 33))
    return weights, ids[:, :-1], ids[:, 1:]


@pytest.mark.parametrize("name", ["transformers", "olmo_core"])
def test_peer_matches_ours(name):
    """Guards the benchmark against timing a different model: the peer built from our weights (for
    OLMo-core through OLMo-core's own HF converter and TransformerConfig) gives our fp32 logits and,
    through its training loss, our summed CE and z-loss and our gradients of the embedding."""
    if name not in available_peers():
        pytest.skip(f"{name} does not import here")
    weights, x, y = _setup()
    ours, peer = PEERS["olmo2_lit"].build(CFG, weights), PEERS[name].build(CFG, weights)
    with torch.no_grad():
        reference = ours(x)
    check_logits(name, peer, x, reference, atol=1e-5)
    losses = []
    for spec, model in ((PEERS["olmo2_lit"], ours), (PEERS[name], peer)):
        ce, z = spec.train_loss(model, x, y, 1e-2)
        (ce + z).backward()
        losses.append((ce.detach(), z.detach()))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    embeddings = peer.get_input_embeddings() if name == "transformers" else peer.embeddings
    grad = embeddings.weight.grad
    scale = ours.embeddings.weight.grad.abs().max()
    torch.testing.assert_close(grad, ours.embeddings.weight.grad, rtol=0, atol=1e-4 * scale)


def test_check_logits_stops_on_a_different_model():
    """Guards the abort path: a peer whose final norm differs by 1% is refused with its name."""
    weights, x, _ = _setup()
    ours = PEERS["olmo2_lit"].build(CFG, weights)
    with torch.no_grad():
        reference = ours(x)
        ours.norm.weight.mul_(1.01)
    with pytest.raises(SystemExit, match="olmo2_lit does not compute our model's function"):
        check_logits("olmo2_lit", ours, x, reference)


def test_peak_memory_sees_an_allocation():
    """Guards the CPU memory mode against a counter that misses what the step allocates: 64 MiB
    touched after ``start`` shows as a peak of at least 64 MiB, and is gone from the next start."""
    mem = PeakMemory(device=torch.device("cpu"))
    mem.start()
    block = torch.ones(16 * 2**20)  # 64 MiB of fp32, written
    assert mem.peak_mib() >= 63.5
    del block
    mem.start()
    assert mem.peak_mib() < 16
