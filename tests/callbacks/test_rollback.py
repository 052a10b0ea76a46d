"""Rollback in a real tiny run: a grad-norm spike at step 10 rolls back to the step-9 checkpoint."""

import json

import pytest
import torch
from stability_config import MONITOR, layer, probe
from training_helpers import fit, scalars, tiny_args

from olmo2_lit.callbacks.rollback import Rollback

TOKENS_PER_STEP = 8 * 64


def rollback_callbacks(tmp_path) -> list[dict]:
    return [
        MONITOR,
        {"class_path": "olmo2_lit.callbacks.rollback.Rollback", "init_args": {"spikes": 1, "window": 6}},
        probe("ScaleGradsAt", steps=[10]),
        probe("RollbackRecorder", checkpoint=str(tmp_path / "ckpt" / "step0000009.ckpt")),
    ]


def rollback_layer(tmp_path) -> list[str]:
    return layer(tmp_path / "rollback.yaml", rollback_callbacks(tmp_path))


def check_rollback(tmp_path, *, ranks: int = 1) -> None:
    """Restored weights, skipped data, the record, and a run that reaches max_steps (18)."""
    record = json.loads((tmp_path / "rollbacks.json").read_text())["rollbacks"]
    assert len(record) == 1
    entry = record[0]
    assert (entry["at_step"], entry["spike_steps"], entry["restored_step"]) == (10, [10], 9)
    assert entry["checkpoint"].endswith("step0000009.ckpt")
    assert [s["step"] for s in entry["skipped"]] == [9, 10]
    for s in entry["skipped"]:
        assert len(s["instances"]) == 8  # the whole global batch, every rank's share
        assert all(i["shard"].endswith(".npy") and i["offset"] % 64 == 0 for i in s["instances"])
    assert len({i["index"] for s in entry["skipped"] for i in s["instances"]}) == 16
    for rank in range(ranks):
        (after,) = json.loads((tmp_path / f"rollback_record_rank{rank}.json").read_text())
        assert after["weights_equal_checkpoint"] and after["global_step"] == 9
        assert after["tokens_seen"] == 11 * TOKENS_PER_STEP  # past the data of steps 9 and 10
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 18
    # 18 steps trained on, 2 more steps of data skipped
    assert last["TokenShardDataModule"]["total_tokens"] == 20 * TOKENS_PER_STEP
    assert scalars(tmp_path, "spike/rollbacks")[-1][1] == 1.0


def test_rollback_restores_checkpoint_skips_data_and_finishes(shards, tmp_path):
    """Guards against a rollback that restores the wrong checkpoint, replays the offending batches,
    loses the record of them, or stops short of max_steps."""
    fit(tiny_args(tmp_path, shards, max_steps=18, extra=tuple(rollback_layer(tmp_path))))
    check_rollback(tmp_path)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (
            ("--checkpoint.every_n_train_steps", "8"),
            r"every_n_train_steps \(8\) is longer than Rollback's window \(6\)",
        ),
        (("--checkpoint.every_n_train_steps", "0"), "Rollback needs periodic checkpoints"),
    ],
)
def test_rollback_without_usable_checkpoints_is_refused(shards, tmp_path, extra, match):
    """Guards against a rollback that would find no checkpoint when it is needed, hours into a run."""
    with pytest.raises(ValueError, match=match):
        fit(tiny_args(tmp_path, shards, max_steps=2, extra=(*rollback_layer(tmp_path), *extra)))


def test_rollback_arguments_are_checked():
    """Guards against a rollback that can never trigger (more spikes than steps in its window)."""
    with pytest.raises(ValueError, match="spikes <= window"):
        Rollback(spikes=5, window=3)


def _rollback_entries(tmp_path) -> list[tuple[int, int, str]]:
    """(at_step, restored_step, checkpoint file name) of each rollback in the record."""
    record = json.loads((tmp_path / "rollbacks.json").read_text())["rollbacks"]
    return [(e["at_step"], e["restored_step"], e["checkpoint"].rsplit("/", 1)[-1]) for e in record]


def test_a_second_rollback_can_restore_the_checkpoint_the_first_restored(shards, tmp_path):
    """Spikes at steps 10 and 11 (checkpoints every 3 steps): the first rolls back to step 9; the run
    redoes step 9 and 10, spikes at 11 and rolls back to step 9 again, the newest checkpoint at or before
    that spike, not step 6. Guards against the restored checkpoint dropped from the candidates."""
    callbacks = [
        MONITOR,
        {"class_path": "olmo2_lit.callbacks.rollback.Rollback", "init_args": {"spikes": 1, "window": 6}},
        probe("ScaleGradsAt", steps=[10, 11]),
    ]
    fit(tiny_args(tmp_path, shards, max_steps=14, extra=tuple(layer(tmp_path / "r.yaml", callbacks))))
    assert _rollback_entries(tmp_path) == [(10, 9, "step0000009.ckpt"), (11, 9, "step0000009.ckpt")]
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 14


def test_rollback_added_on_resume_can_roll_back_to_the_checkpoint_resumed_from(shards, tmp_path):
    """A run trained 9 steps without Rollback, resumed from its step-9 checkpoint (``--ckpt_path``) with
    Rollback added (as after seeing a first instability), spikes at step 10 before saving anything: it
    rolls back to step 9, the file it resumed from (weights equal to it). Guards against the resume's own
    checkpoint missing from the candidates (the checkpoint holds no Rollback state to list it)."""
    fit(tiny_args(tmp_path, shards, max_steps=9, extra=tuple(layer(tmp_path / "first.yaml", [MONITOR]))))
    resumed = [
        MONITOR,
        {"class_path": "olmo2_lit.callbacks.rollback.Rollback", "init_args": {"spikes": 1, "window": 6}},
        probe("ScaleGradsAt", steps=[10]),
        probe("RollbackRecorder", checkpoint=str(tmp_path / "ckpt" / "step0000009.ckpt")),
    ]
    extra = (
        *layer(tmp_path / "resumed.yaml", resumed),
        "--ckpt_path",
        str(tmp_path / "ckpt" / "step0000009.ckpt"),
    )
    fit(tiny_args(tmp_path, shards, max_steps=12, extra=extra))
    assert _rollback_entries(tmp_path) == [(10, 9, "step0000009.ckpt")]
    (after,) = json.loads((tmp_path / "rollback_record_rank0.json").read_text())
    assert after["weights_equal_checkpoint"] and after["global_step"] == 9
