"""Detection, skip-step and LR backoff in one real tiny run, gradients scaled x1e3 at step 12 of 18."""

import json

from stability_config import MONITOR, layer, probe, skip_step_optimizer
from training_helpers import fit, scalars, tiny_args

from olmo2_lit.train.schedules import CosineWithWarmup

BACKOFF = {
    "class_path": "olmo2_lit.callbacks.lr_backoff.LRBackoff",
    "init_args": {"spikes": 1, "window": 4, "factor": 0.5, "duration": 3, "recovery": 1},
}


def test_injected_spike_is_detected_skipped_and_backs_off_the_lr(shards, tmp_path):
    """Guards against a detector that fires late, early or never; a 'skip' that still changes the
    weights, the Adam moments or the step count; and a backoff that starts at the wrong step, lasts the
    wrong time, fights the schedule (the LR must be the schedule's times the multiplier) or never
    recovers."""
    callbacks = [MONITOR, BACKOFF, probe("ScaleGradsAt", steps=[12]), probe("StepRecorder", step=12)]
    extra = layer(tmp_path / "stab.yaml", callbacks, optimizer=skip_step_optimizer())
    fit(tiny_args(tmp_path, shards, max_steps=18, extra=tuple(extra)))

    spikes = scalars(tmp_path, "spike/is_spike")
    assert [s for s, _ in spikes] == list(range(18))
    assert [s for s, v in spikes if v] == [12]
    assert [s for s, v in scalars(tmp_path, "spike/grad_norm_spike") if v] == [12]
    assert [s for s, v in scalars(tmp_path, "optim/step_skipped") if v] == [12]
    record = json.loads((tmp_path / "step_record_rank0.json").read_text())
    assert record == {
        "weights_unchanged": True,
        "moments_unchanged": True,
        "steps_unchanged": True,
        "had_state": True,
    }

    lrs = dict(scalars(tmp_path, "optim/lr"))
    schedule = CosineWithWarmup(warmup=2, t_max=20)
    peak = lrs[5] / schedule.factor(6)  # step k runs at the schedule's value at k + 1
    multipliers = [round(lrs[k] / (peak * schedule.factor(k + 1)), 6) for k in range(18)]
    assert multipliers == [1.0] * 13 + [0.5, 0.5, 0.5, 0.75, 1.0]
    assert [v for _, v in scalars(tmp_path, "optim/lr_backoff")] == multipliers
