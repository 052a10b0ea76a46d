"""The spike monitor and the skip-step optimizer in real tiny runs with an injected grad-norm spike."""

import json

from stability_config import MONITOR, layer, probe, skip_step_optimizer
from training_helpers import fit, scalars, tiny_args


def test_injected_spike_is_detected_and_skipped(shards, tmp_path):
    """Guards against a detector that fires late, early or never, and a 'skip' that still changes the
    weights, the Adam moments or the step count: gradients x1e3 at step 12 of 16."""
    callbacks = [MONITOR, probe("ScaleGradsAt", steps=[12]), probe("StepRecorder", step=12)]
    extra = layer(tmp_path / "stab.yaml", callbacks, optimizer=skip_step_optimizer())
    fit(tiny_args(tmp_path, shards, max_steps=16, extra=tuple(extra)))
    spikes = scalars(tmp_path, "spike/is_spike")
    assert [s for s, _ in spikes] == list(range(16))
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
