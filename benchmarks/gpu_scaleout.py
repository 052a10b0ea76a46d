"""On one CUDA GPU: the same few bf16 steps under every strategy fragment; losses agree, and speed and memory.

A ~1B-shaped model (OLMo 2 1B widths, 4 layers instead of 16 so it starts fast), sequence 2048, global
batch 8 = micro 4 x accumulation 2, 10 steps from the same seed and synthetic data, under DDP, FSDP2,
FSDP (v1), DeepSpeed ZeRO-2 and ZeRO-3 (``experiments/strategies/*.yaml`` layered on the 1B recipe, as a
user would). Each strategy runs as its own ``olmo2-lit fit`` subprocess with a time limit; a failure is
reported (last lines of its stderr) and the others continue. Prints, per strategy: per-step losses' largest
relative difference from DDP's, tokens/s and MFU over the steps after the first 3, and peak GPU memory.
Finishes in about 4 minutes on one H100::

    python benchmarks/gpu_scaleout.py            # from the repository root

On one GPU nothing is actually sharded (world size 1); the run checks that each engine wraps, trains
and clips our module with the same numbers, not the memory saving, which needs several GPUs.
"""

from __future__ import annotations

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
STRATEGIES = tuple(sys.argv[1:]) or ("ddp", "fsdp2", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
SEQ, GLOBAL, MICRO, STEPS, LAYERS, WARM = 2048, 8, 4, 10, 4, 3
TIMEOUT_S = 45
LOSS_RTOL = 2e-2  # bf16 compute under different engines; a wrong scale or missing clip is far beyond


class Probe(StepCallback):
    """Records each optimizer step's global loss and end time, then peak memory, to a JSON file."""

    def __init__(self, out: str) -> None:
        self.out, self.losses, self.times = out, [], []

    def on_step(self, trainer, pl_module, record) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        self.losses.append(record.loss)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        from olmo2_lit.model.flops import flops_per_token
        from olmo2_lit.train.peak_flops import peak_flops_per_device

        peak = peak_flops_per_device(pl_module.device, "bf16-mixed")
        Path(self.out).write_text(
            json.dumps(
                {
                    "losses": self.losses,
                    "times": self.times,
                    "tokens_per_step": pl_module.batch_plan.tokens_per_step,
                    "flops_per_token": flops_per_token(pl_module.config, SEQ),
                    "peak_flops": peak,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                    "params": sum(p.numel() for p in pl_module.parameters()),
                }
            )
        )


def write_shards(root: Path) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 100_000, size=SEQ)
    for i in range(2):  # a repeating pattern with noise, so the loss can fall within 10 steps
        tokens = np.concatenate([np.roll(base, k) for k in range(64)])
        tokens[rng.random(tokens.size) < 0.1] = rng.integers(0, 100_000)
        tokens.astype(np.uint32).tofile(root / f"part-{i}.npy")
    return root


def fit_args(name: str, shards: Path, work: Path, out: Path) -> list[str]:
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
    ]  # fmt: skip


def run(name: str, shards: Path, work: Path) -> dict:
    out = work / f"{name}.json"
    args = fit_args(name, shards, work, out)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "olmo2_lit", "fit", *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.is_file():
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-4:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    return result


def main() -> None:
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    batch = f"global batch {GLOBAL} = micro {MICRO} x accum {GLOBAL // MICRO}"
    print(f"model: OLMo 2 1B widths, {LAYERS} layers; seq {SEQ}; {batch}; {STEPS} steps, bf16-mixed")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "shards").mkdir()
        shards = write_shards(work / "shards")
        results = {}
        for name in STRATEGIES:
            results[name] = run(name, shards, work)
            r = results[name]
            print(
                f"  {name}: " + (r["error"] if "error" in r else f"done in {r['wall_s']:.0f} s"), flush=True
            )
    ref = results.get("ddp", {}).get("losses")
    print(f"\n{'strategy':16s} {'loss[0]':>8s} {'loss[-1]':>8s} {'max rel diff vs ddp':>20s} "
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
        if ref and len(ref) == len(losses):
            diff = max(abs(a - b) / abs(b) for a, b in zip(losses, ref))
            verdict = f"{diff:.2e} {'ok' if diff <= LOSS_RTOL else 'DIFFERS'}"
            failures += diff > LOSS_RTOL
        else:
            verdict = "no DDP reference"
        print(f"{name:16s} {losses[0]:8.4f} {losses[-1]:8.4f} {verdict:>20s} {tps:10.0f} {mfu:>6s} "
              f"{r['peak_mem_gib']:9.2f}")  # fmt: skip
    window = f"steps {WARM + 1}-{STEPS}"
    print(f"\n{failures} problem(s); loss tolerance rel {LOSS_RTOL}; tokens/s and MFU over {window}")


if __name__ == "__main__":
    main()
