"""SkipStepAdamW against OLMo-core's own (ai2-olmo-core 3.0.0), bitwise, and its skip semantics."""

import pytest
import torch
from olmo_core.optim.adamw import SkipStepAdamW as ReferenceSkipStepAdamW

from olmo2_lit.train.optim import ParamGroup, build_param_groups
from olmo2_lit.train.skip_step import SkipStepAdamW

STEPS = 220
LOSS_SPIKES = {70, 150}  # after the 64-value warm-up
NORM_SPIKES = {100, 190}
EARLY_SPIKE = 30  # inside the warm-up: must be taken


def _signals(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    loss = 3.0 + 0.01 * torch.randn((), generator=gen)
    norm = 1.0 + 0.02 * torch.randn((), generator=gen)
    if step in LOSS_SPIKES or step == EARLY_SPIKE:
        loss = loss + 5.0
    if step in NORM_SPIKES:
        norm = norm * 50
    return loss, norm


def _run(cls, *, foreach: bool, bugfix: bool):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(64, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 64))
    opt = cls(
        build_param_groups(model, [ParamGroup(patterns=["0.weight"], weight_decay=0.0)]),
        lr=1e-2,
        betas=(0.9, 0.95),
        eps=1e-8,
        weight_decay=0.1,
        foreach=foreach,
        step_increment_bugfix=bugfix,
    )
    gen = torch.Generator().manual_seed(1)
    skipped = []
    for step in range(STEPS):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        for group in opt.param_groups:  # a moving LR, as under a schedule
            group["lr"] = 1e-2 * (1 + step % 7) / 7
        opt.latest_loss, opt.latest_grad_norm = _signals(step, gen)
        opt.step()
        skipped.append(int(opt.step_skipped.item()))
    return model, opt, skipped


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("bugfix", [True, False])
def test_bitwise_parity_with_olmo_core(foreach, bugfix):
    """Guards against any drift from OLMo-core's update (order of ops, bias correction, the 32B's
    never-incremented step) over 220 steps with skipped ones: parameters and states are bitwise equal."""
    ours, ours_opt, ours_skips = _run(SkipStepAdamW, foreach=foreach, bugfix=bugfix)
    ref, ref_opt, ref_skips = _run(ReferenceSkipStepAdamW, foreach=foreach, bugfix=bugfix)
    assert ours_skips == ref_skips
    # 71 right after the spike at 70 is not skipped: the spike widened the std (OLMo-core keeps it)
    assert [i for i, s in enumerate(ours_skips) if s] == sorted(LOSS_SPIKES | NORM_SPIKES)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
        a, b = ours_opt.state[p], ref_opt.state[q]
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(a[key], b[key]), (name, key)
    step = ours_opt.state[next(ours.parameters())]["step"]
    assert step.item() == (STEPS - len(LOSS_SPIKES | NORM_SPIKES) if bugfix else 0)


def test_skipped_step_changes_nothing():
    """Guards against a 'skip' that still decays weights, moves the moments or counts the step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = SkipStepAdamW(model.parameters(), lr=0.1, rolling_interval_length=8)
    for i in range(6):
        model.weight.grad, model.bias.grad = torch.randn(3, 4), torch.randn(3)
        opt.latest_loss, opt.latest_grad_norm = torch.tensor(2.0 + 0.01 * i), torch.tensor(1.0 + 0.01 * i)
        opt.step()
    assert opt.step_skipped.item() == 0
    before = {k: v.clone() for k, v in opt.state[model.weight].items()}
    weight = model.weight.detach().clone()
    opt.latest_loss, opt.latest_grad_norm = torch.tensor(100.0), torch.tensor(1.0)
    opt.step()
    assert opt.step_skipped.item() == 1
    assert torch.equal(model.weight, weight)
    assert all(torch.equal(opt.state[model.weight][k], v) for k, v in before.items())
    assert len(opt._losses) == 7  # the skipped value stays in the history


def test_state_dict_round_trip_keeps_the_history():
    """Guards against a resumed run that forgets the loss history and so skips different steps."""
    model = torch.nn.Linear(2, 2)
    opt = SkipStepAdamW(model.parameters(), rolling_interval_length=6)
    for i in range(10):
        model.weight.grad, model.bias.grad = torch.ones(2, 2), torch.ones(2)
        opt.latest_loss, opt.latest_grad_norm = torch.tensor(float(i)), torch.tensor(1.0 + i)
        opt.step()
    fresh = SkipStepAdamW(model.parameters(), rolling_interval_length=6)
    fresh.load_state_dict(opt.state_dict())
    assert [t.item() for t in fresh._losses] == [float(i) for i in range(3, 10)]
    assert [t.item() for t in fresh._grad_norms] == [1.0 + i for i in range(3, 10)]
    assert torch.equal(fresh.state[model.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"sigma_factor": 0}, "sigma_factor"), ({"rolling_interval_length": 4}, "rolling_interval_length")],
)
def test_bad_arguments_are_named(kwargs, match):
    """Guards against a window so short that the std is NaN and every step is skipped forever."""
    with pytest.raises(ValueError, match=match):
        SkipStepAdamW(torch.nn.Linear(2, 2).parameters(), **kwargs)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_groups_keep_their_own_lr_and_moments_take_the_dtype_as_in_olmo_core(dtype):
    """Two parameter groups at different LRs (as lr_scale makes them) and, with ``dtype``, the moments
    kept in that dtype: parameters and states stay bitwise equal to OLMo-core's over 20 steps."""

    def run(cls):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(64, 16), torch.nn.Linear(16, 64))
        groups = build_param_groups(model, [ParamGroup(patterns=["0.weight"], weight_decay=0.0)])
        opt = cls(groups, lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, dtype=dtype)
        gen = torch.Generator().manual_seed(1)
        for step in range(20):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            for group in opt.param_groups:  # the no-decay group at 2 x the schedule's LR
                group["lr"] = 1e-2 * (2 if group["weight_decay"] == 0 else 1) * (1 + step % 3) / 3
            opt.latest_loss, opt.latest_grad_norm = _signals(step, gen)
            opt.step()
        return model, opt

    (ours, ours_opt), (ref, ref_opt) = run(SkipStepAdamW), run(ReferenceSkipStepAdamW)
    assert len(ours_opt.param_groups) == 2
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
        for key in ("exp_avg", "exp_avg_sq"):
            a, b = ours_opt.state[p][key], ref_opt.state[q][key]
            assert a.dtype == b.dtype == (dtype or p.dtype), (name, key)
            assert torch.equal(a, b), (name, key)
