import torch

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token


def test_flops_per_token_counts_matmul_params():
    cfg = ModelConfig.olmo2_7b()
    with torch.device("meta"):
        model = Transformer(cfg)
    # every weight except the input embedding lookup and the norms is a matmul
    matmul_params = (
        sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2) - model.embeddings.weight.numel()
    )
    fwd = flops_per_token(cfg, 4096, training=False)
    assert fwd == 2 * matmul_params + 4 * cfg.n_layers * 4096 * cfg.d_model
    assert flops_per_token(cfg, 4096) == 3 * fwd
    # about 6N for a 7B model at 4k: sanity band
    assert 6 * 6.4e9 < flops_per_token(cfg, 4096) < 6 * 9e9
