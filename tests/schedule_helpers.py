"""The LR each optimizer step runs at under a schedule, as ``ScheduledLR`` sets it in a run (shared by the
schedule boundary tests and the option tests)."""

from __future__ import annotations

import torch

from olmo2_lit.train.schedules import ScheduledLR


def lrs(schedule, steps: int, *, tokens_per_step: int = 100) -> list[float]:
    """The LR each of the first ``steps`` optimizer steps runs at (peak 1)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    seen = {"tokens": 0}
    sched = ScheduledLR(
        opt, schedule=schedule, tokens_per_step=tokens_per_step, tokens_seen=lambda: seen["tokens"]
    )
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        seen["tokens"] += tokens_per_step
        sched.step()
    return out
