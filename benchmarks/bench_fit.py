"""What the full ``olmo2-lit fit`` loop costs over the bare training step, on the same config and data.

Both run in this process, in interleaved rounds (bare, fit, bare, fit, ...), on token shards this
script writes (random uint16 ids, raw files without a sidecar, as OLMo's own). The default config is the
performance issue's: d_model 256, 4 layers, 4 heads, MLP 1024, vocab 8192, batch 8 x 512 (micro batch 8,
no accumulation), fp32, 2 threads, z-loss 1e-5, gradient clipping at 1.0, AdamW (OLMo 2's defaults and
parameter groups), constant LR.

- **bare**: a new :class:`Transformer` and :class:`AdamW` per round, and the batches the fit reads
  (the same instances in the same order: a :class:`TokenShardDataModule` over the same shards with the
  same seed), read once beforehand and already in memory; each step is ``model(input_ids, labels=...)``
  (the fused loss) / target tokens, ``backward``, ``clip_grad_norm_(1.0)``, ``optimizer.step``,
  ``zero_grad``. Nothing else: no data loading, no LR schedule, no logging, no host sync.
- **fit**: a new Trainer per round, built by ``OLMo2CLI`` (``olmo2-lit fit``) with its defaults as
  the quickstart has them: TensorBoard logger (``--log_every_n_steps``, 5 as in the quickstart),
  checkpointing (every 1000 steps and a last.ckpt at the end, so none inside the timed steps), the
  token-throughput, preemption, housekeeping, non-finite-guard, step progress bar, model summary,
  strategy-record and SLURM callbacks, the LR schedule, the datamodule reading the shards in the loop
  (``num_workers`` 0). Nothing is switched off.

Timing: a step's time is the interval between the starts of two consecutive steps (``perf_counter`` at
each ``on_train_batch_start`` of the fit, and before each bare step, the last bare step ending after its
``zero_grad``; after a CUDA synchronize on GPU).
So a fit step includes everything the loop does between two batches: the hooks and logging, the
optimizer and scheduler steps, and fetching the next batch from the shards. The first ``--skip`` steps
of every round are dropped (warm-up), and what comes before the first step (the Trainer's and the
model's construction, ``setup``, sanity checks) and after the last (the final checkpoint, teardown) is
outside every timing. Prints every step time, the median step time of each in every round, the fit
loop's overhead over the bare step in percent (the median over rounds with its range), and the same
for the fastest step of each (on a shared machine, the least disturbed) and for the median CPU time
per step of this process (``process_time``, all threads; less sensitive to other processes' load, but
it counts OpenMP threads spinning while they wait).

    python benchmarks/bench_fit.py                     # the issue's config: minutes on 2 busy cores
    python benchmarks/bench_fit.py --batch 2 --seq 128 --steps 4 --rounds 2   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.lightning_cli import OLMo2CLI
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.optim import AdamW, build_param_groups, olmo2_param_groups

Z_LOSS = 1e-5
CLIP = 1.0


def _mark(device: torch.device) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process over all its threads) now."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def _intervals(marks: list[tuple[float, float]], skip: int) -> list[tuple[float, float]]:
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])][skip:]


class StepStarts(Callback):
    """Notes the time at the start of every training batch (one batch per step here)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.marks.append(_mark(self.device))


def write_shards(directory: Path, *, vocab: int, tokens: int) -> Path:
    """Two raw uint16 shards of uniformly random token ids, ``tokens`` in all."""
    rng = np.random.default_rng(0)
    for i, n in enumerate((tokens // 2, tokens - tokens // 2)):
        rng.integers(0, vocab, size=n, dtype=np.uint16).tofile(directory / f"part-{i}.npy")
    return directory


def _datamodule(args, shards: Path, order_dir: Path) -> TokenShardDataModule:
    return TokenShardDataModule(
        vocab_size=args.vocab,
        train_sources=[DataSource(paths=[str(shards)])],
        sequence_length=args.seq,
        global_batch_size=args.batch,
        micro_batch_size=args.batch,
        dtype="uint16",
        order_dir=str(order_dir),
    )


def _config(args) -> ModelConfig:
    return ModelConfig(
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        mlp_hidden=args.mlp_hidden,
        vocab_size=args.vocab,
        max_sequence_length=max(args.seq, 512),
    )


def bare_round(args, batches: list[dict], device: torch.device) -> list[float]:
    """Step times of the bare step over ``batches`` (already on the device), warm-up steps dropped."""
    torch.manual_seed(0)
    model = Transformer(_config(args)).to(device)
    opt = AdamW(build_param_groups(model, olmo2_param_groups()))
    dtype = torch.bfloat16 if args.precision == "bf16-mixed" else None
    marks = []
    for batch in batches[: args.skip + args.steps]:  # then one mark after the last step
        marks.append(_mark(device))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            ce, z = model(batch["input_ids"], labels=batch["labels"], z_loss_multiplier=Z_LOSS)
        ((ce + z) / (batch["labels"] != -100).sum()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    marks.append(_mark(device))
    return _intervals(marks, args.skip)


def fit_round(args, shards: Path, root: Path, device: torch.device) -> list[float]:
    """Step times of ``olmo2-lit fit`` on the shards, warm-up steps dropped."""
    model_args = [
        f"--model.config.{k}={getattr(args, k)}" for k in ("d_model", "n_layers", "n_heads", "mlp_hidden")
    ]
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when our own flags are in sys.argv
    cli = OLMo2CLI(
        args=[
            f"--trainer.accelerator={device.type}",
            "--trainer.devices=1",
            f"--trainer.precision={'32-true' if args.precision == 'fp32' else args.precision}",
            f"--trainer.max_steps={args.skip + args.steps + 1}",
            f"--trainer.gradient_clip_val={CLIP}",
            f"--trainer.log_every_n_steps={args.log_every_n_steps}",
            f"--trainer.default_root_dir={root}",
            f"--trainer.logger.init_args.save_dir={root / 'runs'}",
            f"--checkpoint.dirpath={root / 'ckpt'}",
            *model_args,
            f"--model.config.max_sequence_length={max(args.seq, 512)}",
            f"--model.z_loss_multiplier={Z_LOSS}",
            f"--data.vocab_size={args.vocab}",
            "--data.dtype=uint16",
            f"--data.sequence_length={args.seq}",
            f"--data.global_batch_size={args.batch}",
            f"--data.micro_batch_size={args.batch}",
            f'--data.train_sources=[{{"paths": ["{shards}"]}}]',
        ],
        run=False,
    )
    sys.argv = argv
    starts = StepStarts(device)
    cli.trainer.callbacks.append(starts)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if torch.get_num_threads() != args.threads:
        raise SystemExit(f"the fit changed torch's thread count to {torch.get_num_threads()}")
    return _intervals(starts.marks, args.skip)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8, help="instances per step (micro batch = global batch)")
    p.add_argument("--seq", type=int, default=512, help="tokens per instance")
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--n_layers", type=int, default=4)
    p.add_argument("--n_heads", type=int, default=4)
    p.add_argument("--mlp_hidden", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16-mixed"])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--skip", type=int, default=2, help="untimed warm-up steps at the start of each round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (bare, fit, bare, fit, ...)")
    p.add_argument("--log_every_n_steps", type=int, default=5, help="the fit's logging interval")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_steps = args.skip + args.steps + 1
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as tmp:
        tmp = Path(tmp)
        (tmp / "shards").mkdir()
        shards = write_shards(tmp / "shards", vocab=args.vocab, tokens=(n_steps + 1) * args.batch * args.seq)
        loader = _datamodule(args, shards, tmp / "order").train_dataloader()
        batches = [
            {k: v.to(device) for k, v in b.items() if isinstance(v, torch.Tensor)}
            for b, _ in zip(loader, range(n_steps))
        ]
        steps: dict[str, list[list[tuple[float, float]]]] = {"bare": [], "fit": []}
        for r in range(args.rounds):
            steps["bare"].append(bare_round(args, batches, device))
            steps["fit"].append(fit_round(args, shards, tmp / f"fit{r}", device))
            for name, ts in steps.items():
                print(f"round {r} {name:4s} step times (s): {' '.join(f'{w:.3f}' for w, _ in ts[-1])}")
    tokens = args.batch * args.seq
    print(
        f"\ndevice {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, {args.precision}, "
        f"{args.threads} threads, batch {args.batch} x {args.seq}, {args.steps} timed steps per round "
        f"after {args.skip} warm-up steps, {args.rounds} rounds"
    )
    times = {name: [[w for w, _ in ts] for ts in rounds] for name, rounds in steps.items()}
    medians = {name: [statistics.median(ts) for ts in rounds] for name, rounds in times.items()}
    for name, ms in medians.items():
        all_steps = statistics.median(t for ts in times[name] for t in ts)
        per_round = ", ".join(f"{m:.3f}" for m in ms)
        print(
            f"{name:4s} {all_steps:.3f} s/step = {tokens / all_steps:,.0f} tok/s (round medians: {per_round})"
        )
    overhead = sorted(100 * (f / b - 1) for b, f in zip(medians["bare"], medians["fit"]))
    print(
        f"fit loop over the bare step: {statistics.median(overhead):+.1f}% "
        f"(rounds: {overhead[0]:+.1f}% to {overhead[-1]:+.1f}%)"
    )
    # Load from other processes only ever adds time: the fastest steps are the least disturbed.
    best = {name: min(t for ts in rounds for t in ts) for name, rounds in times.items()}
    print(
        f"fastest step of each: bare {best['bare']:.3f} s, fit {best['fit']:.3f} s, "
        f"{100 * (best['fit'] / best['bare'] - 1):+.1f}%"
    )
    cpu = {name: statistics.median(c for ts in rounds for _, c in ts) for name, rounds in steps.items()}
    print(
        f"CPU time per step (this process, all threads; median): bare {cpu['bare']:.3f} s, "
        f"fit {cpu['fit']:.3f} s, {100 * (cpu['fit'] / cpu['bare'] - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
