"""LR backoff in a real tiny run: a spike at step 10 halves the LR for 3 steps, then it ramps back."""

import pytest
from stability_config import MONITOR, layer, probe
from training_helpers import fit, scalars, tiny_args

from olmo2_lit.callbacks.lr_backoff import LRBackoff
from olmo2_lit.train.schedules import CosineWithWarmup


def test_backoff_scales_the_scheduled_lr_then_recovers(shards, tmp_path):
    """Guards against a backoff that starts at the wrong step, lasts the wrong time, fights the
    schedule (the LR must be the schedule's times the multiplier) or never recovers."""
    backoff = {
        "class_path": "olmo2_lit.callbacks.lr_backoff.LRBackoff",
        "init_args": {"spikes": 1, "window": 4, "factor": 0.5, "duration": 3, "recovery": 1},
    }
    extra = layer(tmp_path / "backoff.yaml", [MONITOR, backoff, probe("ScaleGradsAt", steps=[10])])
    fit(tiny_args(tmp_path, shards, max_steps=16, extra=tuple(extra)))
    assert [s for s, v in scalars(tmp_path, "spike/is_spike") if v] == [10]
    lrs = dict(scalars(tmp_path, "optim/lr"))
    schedule = CosineWithWarmup(warmup=2, t_max=20)
    peak = lrs[5] / schedule.factor(6)  # step k runs at the schedule's value at k + 1
    multipliers = [round(lrs[k] / (peak * schedule.factor(k + 1)), 6) for k in range(16)]
    assert multipliers == [1.0] * 11 + [0.5, 0.5, 0.5, 0.75, 1.0]
    assert [v for _, v in scalars(tmp_path, "optim/lr_backoff")] == multipliers


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5, -0.5])
def test_factor_outside_unit_interval_is_refused(factor):
    """Guards against a 'backoff' that stops training (0) or raises the LR (>= 1)."""
    with pytest.raises(ValueError, match=r"LRBackoff: factor must lie in \(0, 1\)"):
        LRBackoff(factor=factor)
