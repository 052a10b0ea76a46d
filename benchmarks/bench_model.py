"""Training-step throughput of our Transformer against transformers' Olmo2ForCausalLM, side by side.

Both models get the same config and the same weights (through our HF converter); each step is
forward + CE and z-loss + backward + AdamW step, each library's own way (ours fuses the output
projection with the loss). On CPU the two run in interleaved rounds, so machine noise hits both;
prints the median tokens/s, the ratio with its spread over rounds, MFU where the peak is known, and
peak memory on CUDA.

    python benchmarks/bench_model.py                       # CPU: a small config, fp32 and bf16
    python benchmarks/bench_model.py --preset olmo2_1b --seq 4096 --batch 4 --precisions bf16   # GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token
from olmo2_lit.train.loss import lm_loss_sums
from olmo2_lit.train.peak_flops import peak_flops_per_device
from olmo2_lit.weights.convert_hf import model_config_to_hf_config
from olmo2_lit.weights.state_dicts import native_to_hf


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _make_step(model, loss_fn, opt, dtype, device):
    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            ce, z = loss_fn(model)
        (ce + z).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _timed(step, n: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / n


def bench(
    cfg: ModelConfig,
    *,
    batch: int,
    seq: int,
    precision: str,
    device: torch.device,
    steps: int,
    warmup: int,
    rounds: int,
    compile_blocks: bool = False,
) -> dict:
    """Tokens/s of each library's training step, in ``rounds`` interleaved rounds (A, B, A, B, ...).

    Ours is the olmo2_lit step (output projection fused with CE + z-loss); transformers' computes its
    logits and the same CE + z-loss on them. Same config, weights, batch, precision and threads.
    On CUDA one model is on the device at a time (two 1B models and their Adam state do not fit), so
    rounds there run one library after the other.
    """
    torch.manual_seed(0)
    weights = Transformer(cfg).state_dict()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]
    dtype = torch.bfloat16 if precision == "bf16" else None
    builders = {
        "olmo2_lit": (
            lambda: _ours(cfg, weights, compile_blocks),
            lambda m: m(x, labels=y, z_loss_multiplier=1e-5),
        ),
        "transformers": (
            lambda: _hf_model(cfg, weights),
            lambda m: lm_loss_sums(m(input_ids=x).logits, y, z_loss_multiplier=1e-5),
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in builders}
    peak_mem: dict[str, float] = {}

    def prepared(name):
        build, loss_fn = builders[name]
        model = build().to(device)
        opt = torch.optim.AdamW(
            model.parameters(), lr=1e-4, fused=device.type == "cuda", foreach=device.type != "cuda" or None
        )
        n_tokens = (y != -100).sum()
        step = _make_step(model, lambda m: tuple(t / n_tokens for t in loss_fn(m)), opt, dtype, device)
        for _ in range(warmup):
            step()
        return model, opt, step

    if device.type == "cuda":

        def measure(name):  # the model and its optimizer live only inside this call
            _, _, step = prepared(name)
            return [_timed(step, steps, device) for _ in range(rounds)]

        for name in builders:
            torch.cuda.reset_peak_memory_stats()
            try:
                times[name] = measure(name)
            except torch.OutOfMemoryError:
                print(f"{precision:5s} {name:13s} out of memory at batch {batch} x {seq}")
                times.pop(name)
            peak_mem[name] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.empty_cache()
    else:
        ready = {name: prepared(name) for name in builders}
        for _ in range(rounds):
            for name, (_, _, step) in ready.items():
                times[name].append(_timed(step, steps, device))
    rates = {name: [batch * seq / t for t in ts] for name, ts in times.items()}
    peak = peak_flops_per_device(device, precision)
    fpt = flops_per_token(cfg, seq)
    for name, rs in rates.items():
        med = statistics.median(rs)
        mfu = f"{fpt * med / peak:.1%}" if peak else "n/a"
        mem = f"  peak {peak_mem[name]:.1f} GiB" if name in peak_mem else ""
        print(f"{precision:5s} {name:13s} {med:12,.0f} tok/s (median of {len(rs)} rounds)  MFU {mfu}{mem}")
    if len(rates) < 2:
        return rates
    ratios = sorted(a / b for a, b in zip(rates["olmo2_lit"], rates["transformers"]))
    print(
        f"{precision:5s} ratio olmo2_lit / transformers = {statistics.median(ratios):.2f} "
        f"(rounds: {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=None, help="a ModelConfig preset; default a small CPU-sized model")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (A, B, A, B, ...)")
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
            rounds=args.rounds,
            compile_blocks=args.compile,
        )


if __name__ == "__main__":
    main()
