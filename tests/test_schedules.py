import pytest
import torch

from olmo2_lit.train.schedules import Constant, CosineWithWarmup, LinearDecay, ScheduledLR, WarmupStableDecay


def test_olmo2_7b_cosine_reaches_stage2_start_lr():
    """OLMO2.md §2.3: the 7B cosine (warmup 8.39B, t_max 5T, alpha 0.1, peak 3e-4) evaluated where
    stage 1 stopped (3.896T tokens) gives ~6.14e-5, the LR stage 2 starts from (6.1499e-5)."""
    s = CosineWithWarmup(warmup=8_388_608_000, t_max=5e12, alpha_f=0.1, units="tokens")
    assert 3e-4 * s.factor(3.896e12) == pytest.approx(6.15e-5, rel=0.01)
    assert s.factor(0) == 0 and s.factor(8_388_608_000) == pytest.approx(1.0)
    assert s.factor(5e12) == pytest.approx(0.1) and s.factor(6e12) == pytest.approx(0.1)


def test_linear_decay_and_wsd_and_constant():
    lin = LinearDecay(t_max=100)
    assert [lin.factor(t) for t in (0, 50, 100, 150)] == [1.0, 0.5, 0.0, 0.0]
    wsd = WarmupStableDecay(warmup=10, decay=20, t_max=100, alpha_f=0.1)
    assert wsd.factor(5) == 0.5 and wsd.factor(50) == 1.0
    assert wsd.factor(90) == pytest.approx(0.55) and wsd.factor(100) == pytest.approx(0.1)
    assert Constant(warmup=4).factor(2) == 0.5 and Constant().factor(0) == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: CosineWithWarmup(warmup=100, t_max=100),
        lambda: LinearDecay(t_max=10, warmup=10),
        lambda: WarmupStableDecay(warmup=60, decay=50, t_max=100),
        lambda: CosineWithWarmup(warmup=1, t_max=10, units="epochs"),
    ],
)
def test_invalid_schedules_raise(make):
    with pytest.raises(ValueError, match="warmup|units"):
        make()


def test_scheduled_lr_counts_tokens_and_survives_batch_change():
    """Guards token-unit schedules: step k runs at the factor of the tokens seen once its batch is in
    (OLMo-core's indexing; hand values of a linear decay over 1000 tokens), the count is the data
    position, not kept in the scheduler's state, so a resume with a doubled global batch continues
    from the same token."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    seen = {"tokens": 0}
    schedule = LinearDecay(t_max=1000, units="tokens")
    sched = ScheduledLR(opt, schedule=schedule, tokens_per_step=100, tokens_seen=lambda: seen["tokens"])
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        seen["tokens"] += 100
        sched.step()
    assert lrs == pytest.approx([0.9, 0.8, 0.7, 0.6])  # 1 - (tokens seen + this step's 100) / 1000
    state = sched.state_dict()
    assert not {"schedule", "tokens_per_step", "tokens_seen"} & set(state)
    # resume at 400 tokens with a doubled global batch: the next step runs at 1 - 600/1000
    opt2 = torch.optim.SGD([p], lr=1.0)
    sched2 = ScheduledLR(opt2, schedule=schedule, tokens_per_step=200, tokens_seen=lambda: seen["tokens"])
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.4)
    opt2.step()
    seen["tokens"] += 200
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.2)
