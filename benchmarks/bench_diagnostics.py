"""CPU time the Diagnostics callback adds to a training step of the quickstart model (d_model 128, 4 layers,
16 x 256 tokens), at interval 1 and 100, measured as thread CPU time on one thread, so the number holds on
a busy machine too.

    python benchmarks/bench_diagnostics.py [--steps 20]

Lightning and the TensorBoard writes are left out: the step is forward, loss, backward and AdamW, and the
callback's hooks are called where Lightning calls them.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from olmo2_lit.callbacks.diagnostics import Diagnostics
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.loss import lm_loss
from olmo2_lit.train.optim import AdamW


def run(interval: int | None, steps: int) -> float:
    """Mean thread CPU seconds per step with Diagnostics(interval) (None: without it)."""
    torch.manual_seed(0)
    config = ModelConfig(
        d_model=128, n_layers=4, n_heads=4, mlp_hidden=384, vocab_size=4096, max_sequence_length=256
    )
    model = Transformer(config)
    opt = AdamW(model.parameters(), lr=3e-3)
    ids = torch.randint(0, 4096, (16, 257))
    cb = Diagnostics(interval=interval) if interval else None
    trainer = SimpleNamespace(global_step=0, optimizers=[opt], is_global_zero=True, loggers=[])
    module = SimpleNamespace(model=model, device=torch.device("cpu"))
    total = 0.0
    for step in range(steps + 2):
        trainer.global_step = step
        start = time.thread_time()
        if cb:
            cb.on_train_batch_start(trainer, module, {}, 0)
        ce, z = lm_loss(model(ids[:, :-1]), ids[:, 1:], z_loss_multiplier=1e-5)
        loss = ce + z
        if cb:
            cb.on_before_backward(trainer, module, loss)
        loss.backward()
        if cb:
            cb.on_before_optimizer_step(trainer, module, opt)
        opt.step()
        if cb:
            cb.on_train_batch_end(trainer, module, None, {}, 0)
        opt.zero_grad(set_to_none=True)
        if step >= 2:  # warm-up
            total += time.thread_time() - start
    return total / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # all work on this thread, so thread_time sees all of it
    base = run(None, args.steps)
    print(f"no diagnostics: {base * 1e3:.1f} ms CPU per step")
    for interval in (100, 1):
        t = run(interval, args.steps)
        print(f"interval {interval:>3}: {t * 1e3:.1f} ms CPU per step, overhead {100 * (t / base - 1):+.1f}%")


if __name__ == "__main__":
    main()
