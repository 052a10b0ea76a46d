"""On CUDA: our model against transformers' Olmo2ForCausalLM on the same weights, fp32 and bf16.

Prints the max abs logit difference and the loss difference for each dtype (OLMo 2 1B widths,
2 layers, sequence 1024), then the fused output projection + loss against the plain loss on the
logits under bf16 autocast (loss and gradient of the last block's MLP).
"""

import torch

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.loss import lm_loss, lm_loss_sums
from olmo2_lit.weights.convert_hf import model_config_to_hf_config
from olmo2_lit.weights.state_dicts import native_to_hf


def main() -> None:
    from transformers import Olmo2Config, Olmo2ForCausalLM

    torch.manual_seed(0)
    cfg = ModelConfig.olmo2_1b(n_layers=2)
    ours = Transformer(cfg)
    hf = Olmo2ForCausalLM(Olmo2Config(**model_config_to_hf_config(cfg)))
    hf.load_state_dict(native_to_hf(ours.state_dict(), cfg))
    ids = torch.randint(0, cfg.vocab_size, (2, 1025), device="cuda")
    for dtype in (torch.float32, torch.bfloat16):
        a, b = ours.to("cuda", dtype).eval(), hf.to("cuda", dtype).eval()
        with torch.no_grad():
            la, lb = a(ids[:, :-1]).float(), b(input_ids=ids[:, :-1]).logits.float()
        ca, _ = lm_loss(la, ids[:, 1:])
        cb, _ = lm_loss(lb, ids[:, 1:])
        print(
            f"{str(dtype):15s} max|logits diff| {(la - lb).abs().max().item():.3e}  "
            f"(|logits| max {la.abs().max().item():.2f})  loss {ca.item():.6f} vs {cb.item():.6f}"
        )
    model = ours.to("cuda", torch.float32).train()
    x, y = ids[:, :-1], ids[:, 1:]
    results = []
    for fused in (False, True):
        model.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ce, z = (
                model(x, labels=y, z_loss_multiplier=1e-5)
                if fused
                else lm_loss_sums(model(x), y, z_loss_multiplier=1e-5)
            )
        ((ce + z) / y.numel()).backward()
        results.append((ce.item() / y.numel(), model.blocks[-1].feed_forward.w2.weight.grad.clone()))
    (c0, g0), (c1, g1) = results
    print(
        f"fused loss (bf16 autocast): ce {c1:.6f} vs {c0:.6f}; "
        f"max|grad diff| / max|grad| = {((g1 - g0).abs().max() / g0.abs().max()).item():.2e}"
    )


if __name__ == "__main__":
    main()
