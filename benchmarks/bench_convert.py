"""``convert from-olmo-core`` speed on a 1B-shaped checkpoint, beside a plain ``torch.load`` of the same bytes
(a script, not a test; docs/interop.md records the numbers).

OLMo-core's own ``save_model_and_optim_state`` writes the step directory on CPU (random weights, AdamW
moments after one step, the flattened layout its Trainer saves). Then, each timed once after a warm-up
read that puts the files in the page cache:

1. ``read``: the DCP directory read by our converter (each tensor once) -> GB/s of the .distcp bytes;
2. ``convert``: the whole verb (read, rename, regroup, ``torch.save`` of the .ckpt);
3. ``torch.load``: the same tensors saved by ``torch.save`` as one file, loaded back -> GB/s.

    python benchmarks/bench_convert.py                    # OLMo 2 1B: 16 layers, 18 GB of DCP, ~20 GB RAM
    python benchmarks/bench_convert.py --n_layers 2 --vocab_size 8192   # 1B-wide layers, for small hosts
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from olmo2_lit.weights.olmo_core import from_olmo_core
from olmo2_lit.weights.olmo_core_dcp import read_step_dir


def write_olmo_core_step(step: Path, *, n_layers: int, vocab_size: int) -> None:
    """A 1B-shaped OLMo-core step directory written by OLMo-core itself."""
    from olmo_core.distributed.checkpoint import save_model_and_optim_state
    from olmo_core.nn.attention import AttentionBackendName
    from olmo_core.nn.transformer import TransformerConfig
    from olmo_core.optim import AdamWConfig, OptimGroupOverride

    padded = -(-vocab_size // 128) * 128  # as OLMo-core's scripts build it: tokenizer.padded_vocab_size()
    config = TransformerConfig.olmo2_1B(
        vocab_size=padded, n_layers=n_layers, attn_backend=AttentionBackendName.torch
    )
    model = config.build(init_device="cpu")
    no_decay = [OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))]  # OLMo 2's
    optim = AdamWConfig(lr=4e-4, weight_decay=0.1, betas=(0.9, 0.95), group_overrides=no_decay).build(model)
    for p in model.parameters():  # one parameter at a time: AdamW skips the others, and the peak memory
        p.grad = torch.randn_like(p) * 1e-3  # holds one gradient, not all of them (a 1B fits in 24 GB)
        optim.step()
        p.grad = None
    save_model_and_optim_state(  # one writer thread: one tensor serialized at a time
        step / "model_and_optim", model, optim, flatten_optimizer_state=True, thread_count=1
    )
    (step / "train").mkdir()
    loader = dict(
        dataset_fingerprint_version="v2.0", dataset_fingerprint="0" * 64, batches_processed=1,
        tokens_processed=4 * 1024 * 1024, seed=0, epoch=1, dataset_type="fsl", sequence_length=4096,
        max_target_sequence_length=8192,
    )  # fmt: skip
    torch.save(
        dict(
            global_step=1, global_train_tokens_seen=4 * 1024 * 1024, global_train_petaflops=0.0, max_steps=1,
            data_loader=loader, epoch=1, world_size=1, rng={}, callbacks={},
        ),
        step / "train" / "rank0.pt",
    )  # fmt: skip


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_layers", type=int, default=16)
    parser.add_argument("--vocab_size", type=int, default=100_278)
    parser.add_argument("--workdir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_"))
    step = root / "step1"
    write_olmo_core_step(step, n_layers=args.n_layers, vocab_size=args.vocab_size)
    dcp_bytes = sum(p.stat().st_size for p in (step / "model_and_optim").glob("*.distcp"))

    state, _ = read_step_dir(step)  # warm-up: the files are now in the page cache
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    plain = root / "plain.pt"
    torch.save(tensors, plain)
    plain_bytes = plain.stat().st_size
    del state, tensors
    torch.load(plain, map_location="cpu", weights_only=True)  # warm-up
    load_s = _timed(lambda: torch.load(plain, map_location="cpu", weights_only=True))
    print(f"torch.load: {plain_bytes / 1e9:.2f} GB in {load_s:.1f} s", flush=True)
    plain.unlink()  # one copy of the bytes on disk at a time (a 1B's are 18 GB)

    read_step_dir(step)  # the DCP files back in the page cache
    read_s = _timed(lambda: read_step_dir(step))
    print(f"read: {dcp_bytes / 1e9:.2f} GB in {read_s:.1f} s", flush=True)
    out = root / "out.ckpt"
    convert_s = _timed(
        lambda: from_olmo_core(step_dir=str(step), out=str(out), n_heads=16, vocab_size=args.vocab_size)
    )
    out.unlink()
    gb = dcp_bytes / 1e9
    print(
        json.dumps(
            {
                "n_layers": args.n_layers,
                "vocab_size": args.vocab_size,
                "dcp_GB": round(gb, 2),
                "read_GBps": round(gb / read_s, 2),
                "convert_s": round(convert_s, 1),
                "convert_GBps": round(gb / convert_s, 2),
                "torch_load_GBps": round(plain_bytes / 1e9 / load_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
