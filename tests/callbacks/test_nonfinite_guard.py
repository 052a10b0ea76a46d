"""The non-finite guard (on by default in the CLI): stop with a report, or skip the step."""

import json

import pytest
import torch
from stability_config import layer, probe
from training_helpers import fit, scalars, tiny_args

from olmo2_lit.callbacks.nonfinite_guard import NonFiniteGuard


def test_nan_stops_with_a_report_of_data_and_layers(shards, tmp_path):
    """Guards against a bare error that leaves the user to find the data and the layer: a NaN in the
    LM head's weights must be reported with the step's instances and 'lm_head' as first bad output."""
    with pytest.raises(
        FloatingPointError, match=r"non-finite loss or gradient at step 0; see .*nonfinite_step"
    ):
        fit(tiny_args(tmp_path, shards, max_steps=3, extra=("--model.config.init", "nan_init.NaNInit")))
    report = json.loads((tmp_path / "nonfinite_step0000000.json").read_text())
    assert report["step"] == 0
    (rank,) = report["ranks"]
    assert len(rank["instances"]) == 8 and len({i["index"] for i in rank["instances"]}) == 8
    assert all(i["shard"].endswith(".npy") for i in rank["instances"])
    assert rank["nonfinite_activations"][0] == "lm_head"
    assert rank["nonfinite_grads"][0] == "lm_head.weight"
    assert not (tmp_path / "ckpt" / "last.ckpt").exists()  # nothing was saved after the NaN


def test_skip_leaves_weights_and_moments_and_training_goes_on(shards, tmp_path):
    """Guards against a skip that still applies a NaN update (or decays, or counts the step), and
    against a run that cannot go on after it."""
    callbacks = [probe("NaNGradAt", step=4), probe("StepRecorder", step=4)]
    extra = layer(tmp_path / "skip.yaml", callbacks, nonfinite={"action": "skip"})
    fit(tiny_args(tmp_path, shards, max_steps=6, extra=tuple(extra)))
    record = json.loads((tmp_path / "step_record_rank0.json").read_text())
    assert record == {
        "weights_unchanged": True,
        "moments_unchanged": True,
        "steps_unchanged": True,
        "had_state": True,
    }
    assert [v for _, v in scalars(tmp_path, "optim/nonfinite_skipped")] == [0, 0, 0, 0, 1, 1]
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"action": "ignore"}, "action must be"), ({"max_skips": 0}, "max_skips")]
)
def test_bad_arguments_are_named(kwargs, match):
    """Guards against a typo that silently disables the guard."""
    with pytest.raises(ValueError, match=match):
        NonFiniteGuard(**kwargs)
