"""Our LR at named optimizer steps against OLMo-core's own scheduler classes (ai2-olmo-core 3.0.0).

Guards against: the schedule being indexed one step late (OLMo and OLMo-core set step k's LR from
``k * tokens_per_step`` after incrementing the step), a warmup off by one, and shape errors in any
schedule we ship. ScheduledLR is driven exactly as Lightning drives it: built, then stepped once per
optimizer step, with the data position (``tokens_seen``) advanced by one global batch per step.
"""

import warnings

import pytest
import torch

olmo_core_scheduler = pytest.importorskip("olmo_core.optim.scheduler")

from olmo2_lit.train.schedules import (  # noqa: E402
    Constant,
    CosineWithWarmup,
    LinearDecay,
    ScheduledLR,
    WarmupStableDecay,
)

PEAK = 3e-4
TOKENS_PER_STEP = 1024 * 4096  # OLMo 2 7B: 4,194,304 tokens per step (OLMO2.md §2.3)
WARMUP_TOKENS = 8_388_608_000  # 2000 steps
T_MAX_TOKENS = 5_000_000_000_000


def _ours_at(schedule, step: int) -> float:
    """The LR ScheduledLR sets for optimizer step ``step`` (1-based) after ``step - 1`` steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=PEAK)
    seen = {"tokens": 0}
    scheduler = ScheduledLR(
        optimizer, schedule=schedule, tokens_per_step=TOKENS_PER_STEP, tokens_seen=lambda: seen["tokens"]
    )
    # Jump to the position before `step` the way a resumed run would: state plus data position.
    scheduler.last_epoch = step - 2
    seen["tokens"] = (step - 1) * TOKENS_PER_STEP
    with warnings.catch_warnings():  # no optimizer.step() here: only the LR is of interest
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


STEPS_7B = [1, 2, 1999, 2000, 2001, 400_000, 928_646]


@pytest.mark.parametrize("step", STEPS_7B)
def test_cosine_in_tokens_equals_olmo_core(step):
    ours = _ours_at(
        CosineWithWarmup(warmup=WARMUP_TOKENS, t_max=T_MAX_TOKENS, alpha_f=0.1, units="tokens"), step
    )
    ref = olmo_core_scheduler.CosWithWarmup(warmup=WARMUP_TOKENS, alpha_f=0.1).get_lr(
        PEAK, step * TOKENS_PER_STEP, T_MAX_TOKENS
    )
    assert ours == pytest.approx(ref, rel=1e-12, abs=0)


@pytest.mark.parametrize("step", [1, 5, 9, 10, 11, 60, 85, 99, 100])
def test_step_unit_schedules_equal_olmo_core(step):
    cases = [
        (
            CosineWithWarmup(warmup=10, t_max=100, alpha_f=0.1),
            olmo_core_scheduler.CosWithWarmup(warmup=10, alpha_f=0.1),
        ),
        (
            LinearDecay(warmup=10, t_max=100, alpha_f=0.0),
            olmo_core_scheduler.LinearWithWarmup(warmup=10, alpha_f=0.0),
        ),
        (Constant(warmup=10), olmo_core_scheduler.ConstantWithWarmup(warmup=10)),
        (
            WarmupStableDecay(warmup=10, decay=20, t_max=100, alpha_f=0.0),
            olmo_core_scheduler.WSD(warmup=10, decay=20, decay_fraction=None),
        ),
    ]
    for ours, theirs in cases:
        assert _ours_at(ours, step) == pytest.approx(theirs.get_lr(PEAK, step, 100), rel=1e-12, abs=1e-18), (
            type(ours).__name__
        )


@pytest.mark.parametrize("step", [1, 2, 5_000, 11_920, 11_921])
def test_stage2_linear_decay_in_tokens_equals_olmo_core(step):
    """Stage 2: linear from the start LR to 0 over 50B tokens, no warmup (OLMO2.md §2.4)."""
    t_max = 50_000_000_000
    ours = _ours_at(LinearDecay(t_max=t_max, alpha_f=0.0, units="tokens"), step)
    ref = olmo_core_scheduler.LinearWithWarmup(warmup=0, alpha_f=0.0).get_lr(
        PEAK, step * TOKENS_PER_STEP, t_max
    )
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-18)


def test_first_step_is_not_run_at_lr_zero():
    """The old off-by-one ran step 1 at the schedule's value at 0 (LR 0 under warmup)."""
    assert _ours_at(CosineWithWarmup(warmup=10, t_max=100), 1) == pytest.approx(PEAK / 10, rel=1e-12)
