import torch

from olmo2_lit.train.loss import lm_loss


def test_ce_and_z_loss_match_definition():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g, dtype=torch.float64).bfloat16()
    labels = torch.randint(0, 11, (2, 5), generator=g)
    labels[0, 1] = labels[1, 4] = -100
    ce, z = lm_loss(logits, labels, z_loss_multiplier=1e-5)
    lf, keep = logits.float().flatten(0, 1), labels.flatten() != -100
    ref_ce = torch.nn.functional.cross_entropy(lf[keep], labels.flatten()[keep])
    ref_z = 1e-5 * torch.logsumexp(lf[keep], -1).pow(2).mean()
    torch.testing.assert_close(ce, ref_ce)
    torch.testing.assert_close(z, ref_z)
    assert ce.dtype == torch.float32  # upcast before the softmax


def test_disabled_z_loss_and_all_ignored():
    logits = torch.randn(1, 3, 7)
    ce, z = lm_loss(logits, torch.tensor([[1, 2, 3]]), z_loss_multiplier=0)
    assert z == 0 and ce > 0
    ce, z = lm_loss(logits, torch.full((1, 3), -100), z_loss_multiplier=1e-5)
    assert ce == 0 and z == 0  # a fully filtered batch gives zero, not NaN
