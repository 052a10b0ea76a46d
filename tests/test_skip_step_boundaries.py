"""SkipStepAdamW's warm-up, window and threshold at their boundary k and its neighbours k-1, k+1.

The rule (docs/stability.md, "Skip-step AdamW"): the last ``n + 1`` losses and grad norms are kept
(``n = rolling_interval_length``); while fewer than ``max(2, n // 2)`` losses are recorded every step is
taken; otherwise a step is taken iff ``value - mean <= sigma_factor * std`` for both signals, with the
Bessel-corrected std over the history without the current value. Expectations are computed here with
small numbers: 1, 3, 1, 3, 2 has mean 2 and sample std exactly 1, so 6 standard deviations is exactly 8.

Guards against a warm-up one step long or short, a history one value too long or short, a strict
threshold where OLMo-core's is inclusive, and a rule that watches only one of the two signals.
"""

import pytest
import torch

from olmo2_lit.train.skip_step import SkipStepAdamW

BASE = [1.0, 3.0, 1.0, 3.0, 2.0]  # mean 2, sample std 1
EPS = 1e-5  # well above float32's spacing at 8 (9.5e-7)


def run(values, *, n: int, norms=None, sigma: float = 6.0) -> list[bool]:
    """Feed (loss, grad norm) per step; returns whether each step was skipped."""
    model = torch.nn.Linear(2, 2)
    opt = SkipStepAdamW(model.parameters(), lr=0.1, rolling_interval_length=n, sigma_factor=sigma)
    norms = norms if norms is not None else [2.0] * len(values)
    skipped = []
    for loss, norm in zip(values, norms):
        model.weight.grad, model.bias.grad = torch.ones(2, 2), torch.ones(2)
        opt.latest_loss, opt.latest_grad_norm = torch.tensor(loss), torch.tensor(norm)
        opt.step()
        skipped.append(bool(opt.step_skipped.item()))
    return skipped


@pytest.mark.parametrize(
    ("n", "recorded", "judged"),
    [
        (8, 3, False),  # warm-up max(2, 8 // 2) = 4 losses, the current one included
        (8, 4, True),
        (8, 5, True),
        (9, 3, False),  # 9 // 2 = 4 as well
        (9, 4, True),
        (6, 2, False),  # the smallest n: warm-up 3
        (6, 3, True),
    ],
)
def test_the_warmup_counts_the_current_loss(n, recorded, judged):
    """A loss of 1000 after ``recorded - 1`` ordinary ones is taken inside the warm-up, skipped after."""
    previous = (BASE * 2)[: recorded - 1]
    skipped = run(previous + [1000.0], n=n)
    assert skipped == [False] * (recorded - 1) + [judged]


@pytest.mark.parametrize(("offset", "skip"), [(-EPS, False), (0.0, False), (+EPS, True)])
def test_the_loss_threshold_is_inclusive(offset, skip):
    """History 1, 3, 1, 3, 2: mean 2, sample std 1; sigma 6: a loss of exactly 8 is taken."""
    assert run(BASE + [8.0 + offset], n=6)[-1] is skip


@pytest.mark.parametrize(("offset", "skip"), [(-EPS, False), (0.0, False), (+EPS, True)])
def test_the_grad_norm_threshold_is_inclusive_and_judged_on_its_own(offset, skip):
    """The same history for the grad norm, the loss at its mean: the grad norm alone decides."""
    losses = BASE + [2.0]
    assert run(losses, n=6, norms=BASE + [8.0 + offset])[-1] is skip


@pytest.mark.parametrize(("sigma", "skip"), [(5.0, True), (6.0, False), (7.0, False)])
def test_the_threshold_scales_with_sigma_factor(sigma, skip):
    """A loss of 8 (6 std above the mean) is skipped at sigma 5, taken at 6 and 7."""
    assert run(BASE + [8.0], n=6, sigma=sigma)[-1] is skip


@pytest.mark.parametrize(("age", "in_history"), [(5, True), (6, True), (7, False)])
def test_the_history_is_the_last_n_values_before_the_current_one(age, in_history):
    """n = 6: a 100 six steps back still widens the std (a 20 is taken), seven steps back it has left
    the history and the 20 is skipped (mean ~2, std ~1 over 1s and 3s)."""
    previous = [1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0]
    previous[len(previous) - age] = 100.0
    skipped = run(previous + [20.0], n=6)
    assert skipped[-1] is (not in_history)


@pytest.mark.parametrize(("n", "ok"), [(5, False), (6, True), (7, True)])
def test_the_shortest_window_is_6(n, ok):
    """Under 6 the warm-up leaves one value for a Bessel std: NaN, and every later step is skipped."""
    params = torch.nn.Linear(2, 2).parameters()
    if ok:
        SkipStepAdamW(params, rolling_interval_length=n)
    else:
        with pytest.raises(ValueError, match="rolling_interval_length must be >= 6"):
            SkipStepAdamW(params, rolling_interval_length=n)


@pytest.mark.parametrize(("sigma", "ok"), [(0.0, False), (1e-9, True)])
def test_sigma_factor_must_be_positive(sigma, ok):
    params = torch.nn.Linear(2, 2).parameters()
    if ok:
        SkipStepAdamW(params, sigma_factor=sigma)
    else:
        with pytest.raises(ValueError, match="sigma_factor must be > 0"):
            SkipStepAdamW(params, sigma_factor=sigma)
