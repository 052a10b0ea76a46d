"""The attention backends with document masking, side by side: equal outputs and gradients, and speed.

Each registered backend (``sdpa``, ``flex``, ``xformers``, and ``eager`` as the plain reference) gets the
same bf16 q, k, v of OLMo 2 1B widths (16 heads of 128, sequence 4096) and the same document lengths
(several documents per row), runs forward and backward, and is compared with ``sdpa`` (largest absolute
difference of the output and of the q/k/v gradients, relative to the largest element) and timed over
``--steps`` forward + backward passes. A backend that cannot run here (xformers not installed or built for
another torch) prints why, and the others go on.

    python benchmarks/gpu_attention.py                  # CUDA: 2 x 4096, documents of 100-2000 tokens
    python benchmarks/gpu_attention.py --cpu_smoke      # tiny, fp32, on the CPU (sdpa and eager)
"""

from __future__ import annotations

import argparse
import time

import torch

from olmo2_lit.model import ATTENTION

RTOL = 2e-2  # bf16 inputs, fp32 accumulation in every kernel, in another order: ~1e-3 expected


def doc_lens(batch: int, seq: int, gen: torch.Generator) -> torch.Tensor:
    """(B, max_docs) document lengths, zero-padded, each row summing to ``seq``."""
    rows = []
    for _ in range(batch):
        cuts = torch.randint(max(seq // 40, 1), max(seq // 2, 2), (64,), generator=gen).cumsum(0)
        cuts = cuts[cuts < seq].tolist()
        rows.append(torch.diff(torch.tensor([0, *cuts, seq])))
    out = torch.zeros(batch, max(len(r) for r in rows), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def run(name, q, k, v, docs, grad, steps):
    """Output, q/k/v gradients and the median seconds of a forward + backward of backend ``name``."""
    backend = ATTENTION.get(name)()
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = backend(q, k, v, docs)
    out.backward(grad)
    times = []
    for _ in range(steps):
        if q.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        backend(q, k, v, docs).backward(grad)
        if q.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    q.grad = k.grad = v.grad = None
    backend(q, k, v, docs).backward(grad)
    return out.detach(), [t.grad for t in (q, k, v)], sorted(times)[len(times) // 2]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["sdpa", "flex", "xformers", "eager"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv_heads", type=int, default=16)
    p.add_argument("--head_dim", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--cpu_smoke", action="store_true", help="tiny shapes, fp32, sdpa and eager on the CPU")
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    if args.cpu_smoke:
        args.batch, args.seq, args.heads, args.kv_heads, args.head_dim, args.steps = 2, 64, 4, 2, 16, 1
        args.backends = ["sdpa", "eager"]  # flex has no backward on the CPU; xformers is CUDA only
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, args.heads, args.seq, args.head_dim)
    kv_shape = (args.batch, args.kv_heads, args.seq, args.head_dim)
    q = torch.randn(shape, generator=gen).to(device, dtype)
    k, v = (torch.randn(kv_shape, generator=gen).to(device, dtype) for _ in range(2))
    grad = torch.randn(shape, generator=gen).to(device, dtype)  # of the output, for the backward
    docs = doc_lens(args.batch, args.seq, gen).to(device)
    print(
        f"{torch.cuda.get_device_name() if cuda else 'cpu (smoke)'}; torch {torch.__version__}; "
        f"q {tuple(shape)}, kv heads {args.kv_heads}, {dtype}; documents per row: "
        f"{(docs > 0).sum(1).tolist()}; differences relative to sdpa's largest element, tolerance {RTOL}",
        flush=True,
    )
    ref = None
    for name in args.backends:
        try:
            out, grads, t = run(name, q, k, v, docs, grad, args.steps)
        except Exception as err:  # a backend that cannot run here: say why, go on
            print(f"{name:9s} cannot run here: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
            continue
        if ref is None:
            ref = (out, grads)
        diffs = [rel(out, ref[0])] + [rel(g, r) for g, r in zip(grads, ref[1])]
        verdict = "ok" if max(diffs) <= RTOL else "DIFFERS"
        print(
            f"{name:9s} fwd+bwd {t * 1e3:8.2f} ms   out {diffs[0]:.1e}  dq {diffs[1]:.1e}  "
            f"dk {diffs[2]:.1e}  dv {diffs[3]:.1e}  {verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()
