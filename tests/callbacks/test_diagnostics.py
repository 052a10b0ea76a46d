"""Per-layer diagnostics: a tiny run checked against the module's own grad norm and the checkpoint's
weights, and the statistics against brute-force computations."""

import math

import pytest
import torch
from stability_config import layer
from training_helpers import fit, load_weights, scalars, tiny_args

from olmo2_lit.train.layer_stats import adam_update, max_attention_logit

LAYERS = ["embeddings", "block_0", "block_1", "final_norm", "lm_head"]


def test_diagnostics_in_a_tiny_run(shards, tmp_path):
    """Guards against per-layer norms that miss parameters or read the wrong moment: the per-layer grad
    norms must add up (in squares) to the global pre-clip norm, and the LM head's parameter norm at
    step 3 must be that of the step-3 checkpoint's weights."""
    diag = {"class_path": "olmo2_lit.callbacks.diagnostics.Diagnostics", "init_args": {"interval": 3}}
    fit(tiny_args(tmp_path, shards, max_steps=6, extra=tuple(layer(tmp_path / "diag.yaml", [diag]))))
    for kind in ("grad_norm", "param_norm", "update_ratio"):
        for name in LAYERS:
            values = scalars(tmp_path, f"diag/{kind}/{name}")
            assert [s for s, _ in values] == [0, 3] and all(v > 0 for _, v in values), (kind, name)
    for kind in ("act_rms", "act_max", "attn_logit_max"):
        for name in LAYERS[1:3]:
            assert [s for s, _ in scalars(tmp_path, f"diag/{kind}/{name}")] == [0, 3], (kind, name)
    global_norm = dict(scalars(tmp_path, "optim/grad_norm"))
    for step in (0, 3):
        squares = sum(dict(scalars(tmp_path, f"diag/grad_norm/{n}"))[step] ** 2 for n in LAYERS)
        assert math.sqrt(squares) == pytest.approx(global_norm[step], rel=1e-5)
    weights = load_weights(tmp_path / "ckpt" / "step0000003.ckpt")
    lm_head = dict(scalars(tmp_path, "diag/param_norm/lm_head"))[3]
    assert lm_head == pytest.approx(
        torch.linalg.vector_norm(weights["model.lm_head.weight"]).item(), rel=1e-6
    )


def test_max_attention_logit_matches_brute_force():
    """Guards against a wrong head mapping under GQA, a missing scale, or a non-causal maximum."""
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8)
    k[0, :, 5] = 100.0  # the last key dominates but only the last query may see it
    k_full = k.repeat_interleave(2, dim=1)
    scores = q[0] @ k_full[0].transpose(-1, -2) / math.sqrt(8)  # (H, T, T)
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    expected = scores.masked_fill(~mask, -math.inf).max()
    assert max_attention_logit(q, k).item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected < scores.max()  # the mask matters in this example


def test_adam_update_is_the_step_adamw_took():
    """Guards against a wrong bias correction: with no weight decay the parameter moves by exactly the
    Adam step the diagnostics reconstruct from the moments."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, 3))
    opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    for _ in range(3):
        p.grad = torch.randn(5, 3)
        before = p.detach().clone()
        opt.step()
        update = adam_update(p, opt.state[p], lr=0.01, betas=(0.9, 0.95), eps=1e-8)
        torch.testing.assert_close(before - p.detach(), update, rtol=1e-5, atol=1e-7)
