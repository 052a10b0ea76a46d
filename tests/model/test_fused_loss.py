"""The fused, chunked output projection + CE + z-loss against the plain loss on materialized logits.

Guards against a wrong softmax/z-loss gradient, ignored labels that leak into the loss or the
gradient, chunk boundaries that drop or double tokens, and autocast not applying to the chunk matmuls.
"""

import pytest
import torch

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.model.fused_loss import fused_lm_loss_sums
from olmo2_lit.train.loss import lm_loss_sums


def _inputs():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 11, 16, generator=g, requires_grad=True)
    weight = (torch.randn(300, 16, generator=g) * 0.5).requires_grad_()
    labels = torch.randint(0, 300, (3, 11), generator=g)
    labels[0, -1] = labels[1, :4] = -100
    return hidden, weight, labels


def _loss_and_grads(fn, hidden, weight):
    hidden.grad = weight.grad = None
    ce, z = fn()
    (0.7 * ce + 3.0 * z).backward()  # distinct weights, so both gradient terms are checked
    return ce.detach(), z.detach(), hidden.grad.clone(), weight.grad.clone()


@pytest.mark.parametrize("chunk_elements", [300 * 33, 300 * 5, 300])  # one chunk, uneven chunks, 1 token
def test_matches_the_loss_on_full_logits(chunk_elements):
    """fp32 both ways (the loss upcasts the logits to fp32 by design); only summation order differs."""
    hidden, weight, labels = _inputs()
    ref = _loss_and_grads(
        lambda: lm_loss_sums(hidden @ weight.t(), labels, z_loss_multiplier=1e-2), hidden, weight
    )
    got = _loss_and_grads(
        lambda: fused_lm_loss_sums(
            hidden, weight, labels, z_loss_multiplier=1e-2, chunk_elements=chunk_elements
        ),
        hidden,
        weight,
    )
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_ignored_positions_get_no_gradient_and_z_off_is_zero():
    hidden, weight, labels = _inputs()
    labels[2] = -100
    ce, z = fused_lm_loss_sums(hidden, weight, labels, z_loss_multiplier=0.0)
    ce.backward()
    assert z == 0 and torch.all(hidden.grad[2] == 0) and hidden.grad[0].abs().sum() > 0


def test_bf16_autocast_matches_the_plain_path():
    """Under bf16 autocast the chunk matmuls run in bf16 like ``lm_head`` does; the rest is fp32."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(vocab_size=1000))
    ids = torch.randint(0, 1000, (2, 33))
    x, y = ids[:, :-1], ids[:, 1:]

    def run(fused):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ce, z = (
                model(x, labels=y, z_loss_multiplier=1e-2)
                if fused
                else lm_loss_sums(model(x), y, z_loss_multiplier=1e-2)
            )
        (ce + z).backward()
        return ce.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    (ce_ref, ref), (ce, got) = run(False), run(True)
    torch.testing.assert_close(ce, ce_ref, rtol=1e-5, atol=0)
    for name in ref:
        scale = ref[name].abs().max()
        assert (got[name] - ref[name]).abs().max() <= 2e-2 * scale, name
        assert got[name].abs().max() > 0, name
