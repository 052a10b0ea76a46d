"""A clean run of 250 tiny steps at default settings: no spike, no skip, no backoff, no rollback."""

import pytest
import torch
from stability_config import layer
from training_helpers import fit, tiny_args

CB = "olmo2_lit.callbacks"
STEPS = 250


@pytest.mark.slow
def test_clean_run_raises_no_false_positive(shards, tmp_path):
    """Guards against thresholds that fire on ordinary training noise (the early loss drop, the
    warm-up): with OLMo-core's defaults (6 sigma over 128 steps) nothing may trigger in 250 steps.
    Read from the final checkpoint's states, so the run logs little."""
    callbacks = [
        {"class_path": f"{CB}.spike_monitor.SpikeMonitor"},
        {"class_path": f"{CB}.lr_backoff.LRBackoff"},
        {"class_path": f"{CB}.rollback.Rollback", "init_args": {"window": STEPS}},
    ]
    optimizer = {"class_path": "olmo2_lit.train.skip_step.SkipStepAdamW"}
    extra = (
        *layer(tmp_path / "clean.yaml", callbacks, optimizer=optimizer),
        *("--checkpoint.every_n_train_steps", str(STEPS), "--trainer.log_every_n_steps", "50"),
        *("--data.micro_batch_size", "8"),  # one micro-batch per step: cheaper
    )
    fit(tiny_args(tmp_path, shards, max_steps=STEPS, extra=extra))
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    states = {name.split("{")[0]: state for name, state in ckpt["callbacks"].items()}
    rate = states["SpikeMonitor"]["detector"]["rate"]
    assert (rate["spikes"], rate["steps"]) == (0, STEPS)
    assert len(states["SpikeMonitor"]["detector"]["loss"]["history"]) == 128  # the rule was armed
    assert states["LRBackoff"]["triggers"] == 0 and states["Rollback"]["rollbacks"] == 0
    # SkipStepAdamW: every step was taken (a skipped one does not count)
    assert {s["step"].item() for s in ckpt["optimizer_states"][0]["state"].values()} == {float(STEPS)}
