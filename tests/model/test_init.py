import math

import torch

from olmo2_lit.model import INITS, ModelConfig, Transformer


def test_olmo2_init_truncated_normal_002():
    model = Transformer(ModelConfig.tiny(d_model=64, mlp_hidden=256, vocab_size=2048), init_weights=True)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        else:
            assert p.abs().max() <= 0.06 + 1e-7, name  # cut at 3 sigma
    emb = model.embeddings.weight
    # truncated at 3 sigma: std = 0.02 * 0.9866
    assert abs(emb.std().item() - 0.02 * 0.9866) < 0.0015


def test_olmo0424_scaled_init_depth_scaling():
    cfg = ModelConfig.tiny(d_model=64, n_layers=4, mlp_hidden=256, init="olmo0424_scaled")
    model = Transformer(cfg)
    w_q = model.blocks[0].attention.w_q.weight
    assert abs(w_q.std().item() - 0.9866 / math.sqrt(64)) < 0.02
    out0 = model.blocks[0].attention.w_out.weight.std().item()
    out3 = model.blocks[3].attention.w_out.weight.std().item()
    assert out3 < out0  # 1/sqrt(2 d (layer+1)) shrinks with depth
    assert abs(out3 / out0 - math.sqrt(1 / 4)) < 0.1


def test_init_registry_and_reset():
    assert {"olmo2", "olmo0424_scaled"} <= set(INITS.names())
    model = Transformer(ModelConfig.tiny())
    with torch.no_grad():
        model.blocks[0].attention_norm.weight.fill_(3.0)
    model.reset_parameters()
    assert torch.equal(model.blocks[0].attention_norm.weight, torch.ones(32))
