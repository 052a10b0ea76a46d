"""Training-step throughput of our Transformer against transformers' Olmo2ForCausalLM, side by side.

Both models get the same config and the same weights (through our HF converter); each step is
forward + CE loss + backward + AdamW step. Prints tokens/s for each, their ratio, and MFU where the
device's peak is known.

    python benchmarks/bench_model.py                       # CPU: a small config, fp32 and bf16
    python benchmarks/bench_model.py --preset olmo2_1b --seq 4096 --batch 4 --precisions bf16   # GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token
from olmo2_lit.train.loss import lm_loss
from olmo2_lit.train.peak_flops import peak_flops_per_device
from olmo2_lit.weights.convert_hf import model_config_to_hf_config, native_to_hf


def _ours(cfg: ModelConfig, weights: dict, compile_blocks: bool) -> Transformer:
    model = Transformer(cfg, init_weights=False)
    model.load_state_dict(weights)
    if compile_blocks:
        for block in model.blocks:
            block.compile()
    return model


def _hf_model(cfg: ModelConfig, weights: dict):
    from transformers import Olmo2Config, Olmo2ForCausalLM

    hf = Olmo2ForCausalLM(Olmo2Config(**model_config_to_hf_config(cfg, eos_token_id=0, pad_token_id=1)))
    hf.load_state_dict(native_to_hf(weights, cfg))
    hf.config.use_cache = False
    return hf


def _time_steps(step, n_warmup: int, n_steps: int, device: torch.device) -> float:
    for _ in range(n_warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n_steps


def bench(
    cfg: ModelConfig,
    *,
    batch: int,
    seq: int,
    precision: str,
    device: torch.device,
    steps: int,
    warmup: int,
    compile_blocks: bool = False,
) -> dict:
    torch.manual_seed(0)
    weights = Transformer(cfg).state_dict()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]
    dtype = torch.bfloat16 if precision == "bf16" else None
    results = {}
    builders = {
        "olmo2_lit": (lambda: _ours(cfg, weights, compile_blocks), lambda m: m(x)),
        "transformers": (lambda: _hf_model(cfg, weights), lambda m: m(input_ids=x).logits),
    }
    for name, (build, fwd) in builders.items():  # one model on the device at a time
        model = build().to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

        def step(fwd=fwd, model=model, opt=opt):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                ce, z = lm_loss(fwd(model), y, z_loss_multiplier=1e-5)
            (ce + z).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        results[name] = batch * seq / _time_steps(step, warmup, steps, device)
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    peak = peak_flops_per_device(device, precision)
    fpt = flops_per_token(cfg, seq)
    for name in list(results):
        mfu = f"{fpt * results[name] / peak:.1%}" if peak else "n/a"
        print(f"{precision:5s} {name:13s} {results[name]:12,.0f} tok/s  MFU {mfu}")
    print(
        f"{precision:5s} ratio olmo2_lit / transformers = "
        f"{results['olmo2_lit'] / results['transformers']:.2f}"
    )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=None, help="a ModelConfig preset; default a small CPU-sized model")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="torch.compile each of our blocks")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = (
        ModelConfig.preset_config(args.preset)
        if args.preset
        else ModelConfig(d_model=256, n_layers=4, n_heads=4, mlp_hidden=1024, vocab_size=8192)
    )
    print(
        f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
        f"{args.preset or 'small'} config, batch {args.batch} x seq {args.seq}"
    )
    for precision in args.precisions:
        bench(
            cfg,
            batch=args.batch,
            seq=args.seq,
            precision=precision,
            device=device,
            steps=args.steps,
            warmup=args.warmup,
            compile_blocks=args.compile,
        )


if __name__ == "__main__":
    main()
