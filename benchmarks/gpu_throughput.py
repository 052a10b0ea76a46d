"""Training throughput of the model as ``fit`` wraps it: ``parallelize`` (float8, compile, FSDP2 with
bf16 parameters) applied exactly as ``model.parallelize`` would, bf16 autocast, fused AdamW.

One row per variant: tokens/s, MFU and peak memory of a training step (forward with the output projection
fused into CE + z-loss, backward, AdamW) at the largest micro batch of ``--batch`` that fits (tried from
the largest; an out-of-memory moves to the next, without activation checkpointing). ``--peer
transformers`` adds ``Olmo2ForCausalLM`` with the same widths and layers (its logits + our loss, bf16
autocast, fp32 weights) at the same batch. With ``--fsdp2`` the model is sharded with ``fully_shard`` over
a one-process mesh with the recipes' ``fsdp_param_dtype: bfloat16`` / ``fsdp_reduce_dtype: float32``.

    python benchmarks/gpu_throughput.py --preset olmo2_1b --seq 4096 --batch 8 4 --variants bf16 float8
    python benchmarks/gpu_throughput.py --preset olmo2_7b --layers 4 --batch 2 --fsdp2 --peer transformers
    python benchmarks/gpu_throughput.py --cpu_smoke      # every path on a CPU, tiny shapes, in seconds

``--cpu_smoke`` runs every variant (float8 in torchao's emulation), FSDP2 over gloo and the peer on a tiny
model without compile, so a typo costs no GPU minutes. It prints the same rows (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token
from olmo2_lit.train.loss import lm_loss_sums
from olmo2_lit.train.parallelize import ParallelizeConfig, parallelize
from olmo2_lit.train.peak_flops import peak_flops_per_device

Z_LOSS = 1e-5


def build(cfg: ModelConfig, variant: str, args: argparse.Namespace, device: torch.device):
    """Our model as fit wraps it for ``variant`` (bf16 | float8), or the transformers peer."""
    torch.manual_seed(0)
    if variant == "transformers":
        from peers import PEERS

        return PEERS["transformers"].build(cfg, Transformer(cfg).state_dict()).to(device)
    model = Transformer(cfg)
    config = ParallelizeConfig(
        compile=False if args.eager else "auto",  # auto: per block on CUDA, eager on the CPU (as fit)
        float8="tensorwise" if variant == "float8" else None,
        float8_emulate=device.type == "cpu",
        fsdp_param_dtype="bfloat16" if args.fsdp2 else None,
        fsdp_reduce_dtype="float32" if args.fsdp2 else None,
    )
    mesh = None
    if args.fsdp2:
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(device.type, (1,), mesh_dim_names=("data_parallel",))
    parallelize(model, config, mesh=mesh)  # on the CPU, as fit's configure_model; fully_shard moves it
    return model.to(device)


def step_fn(model, variant: str, x: torch.Tensor, y: torch.Tensor):
    cuda = x.device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda or None, foreach=not cuda or None)
    n = y.numel()

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            if variant == "transformers":
                ce, z = lm_loss_sums(model(input_ids=x).logits, y, z_loss_multiplier=Z_LOSS)
            else:
                ce, z = model(x, labels=y, z_loss_multiplier=Z_LOSS)
        ((ce + z) / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(cfg, variant, batch, args, device) -> dict:
    """Warm-up (compilation included, timed as ``first_s``) and ``--steps`` timed steps at ``batch``."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = build(cfg, variant, args, device)
    ids = torch.randint(0, cfg.vocab_size, (batch, args.seq + 1), device=device)
    step = step_fn(model, variant, ids[:, :-1], ids[:, 1:])
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    _sync(device)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"batch": batch, "step_s": statistics.median(times), "first_s": first, "peak_gib": peak}


def row(cfg, variant, args, device) -> None:
    for batch in args.batch:
        try:
            r = measure(cfg, variant, batch, args, device)
            break
        except torch.OutOfMemoryError:
            print(f"{variant:13s} micro batch {batch}: out of memory, trying the next", flush=True)
            torch.cuda.empty_cache()
    else:
        print(f"{variant:13s} out of memory at every micro batch of {args.batch}")
        return
    tps = r["batch"] * args.seq / r["step_s"]
    peak = peak_flops_per_device(device, "bf16")
    mfu = f"{tps * flops_per_token(cfg, args.seq) / peak:6.1%}" if peak else "   n/a"
    print(
        f"{variant:13s} micro {r['batch']:2d} x {args.seq}: {tps:10,.0f} tok/s  MFU {mfu}  "
        f"peak {r['peak_gib']:6.1f} GiB  warm-up {r['first_s']:5.1f} s (compilation included)",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="olmo2_1b")
    p.add_argument("--layers", type=int, default=None, help="override the preset's n_layers")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--batch", type=int, nargs="+", default=[4], help="micro batches, largest first")
    p.add_argument("--variants", nargs="+", default=["bf16"], choices=["bf16", "float8"])
    p.add_argument("--peer", choices=["transformers"], default=None)
    p.add_argument("--fsdp2", action="store_true", help="fully_shard with bf16 params / fp32 reduction")
    p.add_argument("--eager", action="store_true", help="no torch.compile (default: per block, as auto)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--cpu_smoke", action="store_true", help="tiny shapes on the CPU: checks every path")
    args = p.parse_args()
    if args.cpu_smoke:
        args.preset, args.layers, args.seq, args.batch, args.steps, args.warmup = "tiny", 2, 32, [2], 1, 1
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    overrides = {} if args.layers is None else {"n_layers": args.layers}
    cfg = ModelConfig.preset_config(args.preset, **overrides).resolved()
    if args.fsdp2:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke: numbers mean nothing)"
    print(
        f"{name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}; "
        f"{args.preset}, {cfg.n_layers} layers, "
        f"d_model {cfg.d_model}; bf16 autocast{', FSDP2 bf16 params / fp32 reduce' if args.fsdp2 else ''}; "
        f"{'eager' if args.eager or device.type == 'cpu' else 'compiled per block'}",
        flush=True,
    )
    for variant in [*args.variants, *([args.peer] if args.peer else [])]:
        row(cfg, variant, args, device)
    if args.fsdp2:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
