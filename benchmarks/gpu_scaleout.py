"""On one CUDA GPU: the same few steps under every strategy fragment; losses agree, and speed and memory.

A ~1B-shaped model (OLMo 2 1B widths, 4 layers instead of 16 so it starts fast), sequence 2048, global
batch 8 = micro 4 x accumulation 2, 10 steps from the same seed and synthetic data, under DDP, FSDP2,
FSDP (v1), DeepSpeed ZeRO-2 and ZeRO-3 (``experiments/strategies/*.yaml`` layered on the 1B recipe, as a
user would). Each strategy runs as its own ``olmo2-lit fit`` subprocess with a time limit; a failure is
reported (last lines of its stderr) and the others continue. Prints, per strategy: whether the step-1 loss
is DDP's bit for bit (same initial weights, same data, same arithmetic), the per-step losses' largest
relative difference from DDP's, tokens/s and MFU over the steps after the first 3, and peak GPU memory.

``--precision 32-true`` (the default) runs every engine in fp32 (FSDP2's and FSDP's parameter dtype
overridden to float32), so the first loss must be identical; ``bf16-mixed`` keeps each fragment's own
dtypes (bf16 parameters under FSDP/FSDP2/DeepSpeed, autocast under DDP), whose first losses differ by
rounding. Compile is off (``model.parallelize.compile false``): the engines' arithmetic is compared, and
compilation would eat each run's time limit. About 3 minutes on one H100::

    python benchmarks/gpu_scaleout.py                        # from the repository root
    python benchmarks/gpu_scaleout.py ddp deepspeed_zero2    # a subset
    python benchmarks/gpu_scaleout.py --cpu_smoke            # DDP and FSDP2 on the CPU, tiny: the plumbing

On one GPU nothing is actually sharded (world size 1); the run checks that each engine wraps, trains
and clips our module with the same numbers, not the memory saving, which needs several GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from olmo2_lit.callbacks.step_callback import StepCallback

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("ddp", "fsdp2", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
SEQ, GLOBAL, MICRO, STEPS, LAYERS, WARM = 2048, 8, 4, 10, 4, 3
TIMEOUT_S = 60
LOSS_RTOL = 2e-2  # bf16 compute under different engines; a wrong scale or missing clip is far beyond


class Probe(StepCallback):
    """Records each optimizer step's global loss and end time, then peak memory, to a JSON file."""

    def __init__(self, out: str) -> None:
        self.out, self.losses, self.times = out, [], []

    def on_step(self, trainer, pl_module, record) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        self.losses.append(record.loss)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        from olmo2_lit.model.flops import flops_per_token
        from olmo2_lit.train.peak_flops import peak_flops_per_device

        peak = peak_flops_per_device(pl_module.device, trainer.precision)
        cuda = pl_module.device.type == "cuda"
        Path(self.out).write_text(
            json.dumps(
                {
                    "losses": self.losses,
                    "times": self.times,
                    "tokens_per_step": pl_module.batch_plan.tokens_per_step,
                    "flops_per_token": flops_per_token(
                        pl_module.config, pl_module.batch_plan.sequence_length
                    ),
                    "peak_flops": peak,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
                    "params": sum(p.numel() for p in pl_module.parameters()),
                }
            )
        )


def write_shards(root: Path, vocab: int = 100_000) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, vocab, size=SEQ)
    for i in range(2):  # a repeating pattern with noise, so the loss can fall within 10 steps
        tokens = np.concatenate([np.roll(base, k) for k in range(64)])
        tokens[rng.random(tokens.size) < 0.1] = rng.integers(0, vocab)
        tokens.astype(np.uint32).tofile(root / f"part-{i}.npy")
    return root


def fit_args(name: str, shards: Path, work: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """``olmo2-lit fit`` arguments: the 1B recipe, the strategy fragment, the small run's overrides."""
    return [
        "--config", str(REPO / "experiments" / "olmo2_1b_stage1.yaml"),
        "--config", str(REPO / "experiments" / "strategies" / f"{name}.yaml"),
        "--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.max_steps", str(STEPS),
        "--trainer.default_root_dir", str(work / name), "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--model.config.n_layers", str(LAYERS),
        "--model.schedule.warmup", "2", "--model.schedule.t_max", "100", "--model.schedule.units", "steps",
        "--data.sequence_length", str(SEQ), "--data.global_batch_size", str(GLOBAL),
        "--data.micro_batch_size", str(MICRO), "--data.num_workers", "2",
        "--data.train_sources", json.dumps([{"paths": [str(shards)]}]),
        "--checkpoint.every_n_train_steps", "1000000", "--checkpoint.save_last", "false",
        "--trainer.callbacks+=gpu_scaleout.Probe", f"--trainer.callbacks.out={out}",
        "--trainer.precision", args.precision, "--model.parallelize.compile", "false",
        *(FP32.get(name, ()) if args.precision == "32-true" else ()), *(SMOKE if args.cpu_smoke else ()),
    ]  # fmt: skip


#: fp32 throughout: the fragments' bf16 parameter dtypes overridden (DDP and DeepSpeed follow the precision).
FP32 = {
    "fsdp2": (
        "--model.parallelize.fsdp_param_dtype",
        "null",
        "--model.parallelize.fsdp_reduce_dtype",
        "null",
    ),
    "fsdp": ("--trainer.strategy.param_dtype", "float32"),
}
#: --cpu_smoke: the tiny preset on the CPU, 2 ranks' worth of plumbing in one process (EOS id 0: the
#: recipe's dolma2 EOS is no token of a 256-token vocab).
SMOKE = ("--trainer.accelerator", "cpu", "--model.config.preset", "tiny", "--data.vocab_size", "256",
         "--data.eos_token_id", "0", "--data.sequence_length", "64", "--data.num_workers", "0")  # fmt: skip


def run(name: str, shards: Path, work: Path, cli: argparse.Namespace) -> dict:
    out = work / f"{name}.json"
    args = fit_args(name, shards, work, out, cli)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "olmo2_lit", "fit", *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=cli.timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {cli.timeout} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.is_file():
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-4:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("strategies", nargs="*", choices=[[], *STRATEGIES], default=[], help="default: all")
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument("--cpu_smoke", action="store_true", help="ddp and fsdp2, tiny, on the CPU (plumbing)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per strategy (smoke: 300)")
    args = p.parse_args()
    args.timeout = 300 if args.cpu_smoke else args.timeout
    strategies = args.strategies or (("ddp", "fsdp2") if args.cpu_smoke else STRATEGIES)
    device = "cpu (smoke)" if args.cpu_smoke else torch.cuda.get_device_name(0)
    print(f"device: {device}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    batch = f"global batch {GLOBAL} = micro {MICRO} x accum {GLOBAL // MICRO}"
    widths = "the tiny preset" if args.cpu_smoke else "OLMo 2 1B widths"
    seq = 64 if args.cpu_smoke else SEQ
    print(f"model: {widths}, {LAYERS} layers; seq {seq}; {batch}; {STEPS} steps, {args.precision}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "shards").mkdir()
        shards = write_shards(work / "shards", vocab=256 if args.cpu_smoke else 100_000)
        results = {}
        for name in strategies:
            results[name] = run(name, shards, work, args)
            r = results[name]
            print(
                f"  {name}: " + (r["error"] if "error" in r else f"done in {r['wall_s']:.0f} s"), flush=True
            )
    ref = results.get("ddp", {}).get("losses")
    print(f"\n{'strategy':16s} {'loss[0]':>8s} {'= ddp?':>9s} {'loss[-1]':>8s} {'max rel diff vs ddp':>20s} "
          f"{'tokens/s':>10s} {'MFU':>6s} {'peak GiB':>9s}")  # fmt: skip
    failures = 0
    for name, r in results.items():
        if "error" in r:
            print(f"{name:16s} FAILED: {r['error'][:400]}")
            failures += 1
            continue
        losses, times = r["losses"], r["times"]
        tps = r["tokens_per_step"] * (len(times) - WARM) / (times[-1] - times[WARM - 1])
        mfu = f"{tps * r['flops_per_token'] / r['peak_flops']:.1%}" if r["peak_flops"] else "n/a"
        first = "n/a"
        if ref and len(ref) == len(losses):
            diff = max(abs(a - b) / abs(b) for a, b in zip(losses, ref))
            verdict = f"{diff:.2e} {'ok' if diff <= LOSS_RTOL else 'DIFFERS'}"
            first = "identical" if losses[0] == ref[0] else f"{losses[0] - ref[0]:+.1e}"
            failures += diff > LOSS_RTOL or (args.precision == "32-true" and losses[0] != ref[0])
        else:
            verdict = "no DDP reference"
        print(f"{name:16s} {losses[0]:8.4f} {first:>9s} {losses[-1]:8.4f} {verdict:>20s} {tps:10.0f} "
              f"{mfu:>6s} {r['peak_mem_gib']:9.2f}")  # fmt: skip
    window = f"steps {WARM + 1}-{STEPS}"
    print(f"\n{failures} problem(s); step 1 identical to DDP's in fp32; every step within rel {LOSS_RTOL}; "
          f"tokens/s and MFU over {window}")  # fmt: skip


if __name__ == "__main__":
    main()
