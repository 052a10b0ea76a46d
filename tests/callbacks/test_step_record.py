"""The step record: one per optimizer step, what it holds, and the order the step callbacks get it in.

Guards against a record published per micro-batch or not at all, one whose loss, grad norm, LR or token
count differ from what the module logs for the same step, instance ids lost or duplicated, a skip whose
reason is wrong or missing, and step callbacks run out of their stated order (observers, interventions,
then the callbacks that stop the run).
"""

import json
from types import SimpleNamespace

import pytest
from stability_config import layer, probe, skip_step_optimizer
from training_helpers import fit, make_shards, scalars, tiny_args

from olmo2_lit.callbacks.step_callback import StepCallback, requested_restart, step_callbacks

TOKENS_PER_STEP = 8 * 64
NAN_AT, SPIKE_AT, STEPS = 3, 10, 12


def _named(name: str, role: str) -> StepCallback:
    callback = type(name, (StepCallback,), {"role": role, "on_step": lambda self, *args: None})()
    callback.name = name
    return callback


def test_step_callbacks_run_observers_then_interventions_then_stops_in_list_order():
    listed = [_named("stop1", "stop"), _named("act1", "intervention"), _named("obs1", "observer"),
              object(), _named("act2", "intervention"), _named("obs2", "observer")]  # fmt: skip
    ordered = step_callbacks(SimpleNamespace(callbacks=listed))
    assert [cb.name for cb in ordered] == ["obs1", "obs2", "act1", "act2", "stop1"]


def test_a_restart_is_requested_only_by_a_callback_that_asks():
    asking = _named("asks", "intervention")
    asking.restart_from = lambda: "/ckpt/step0000009.ckpt"
    assert requested_restart(SimpleNamespace(callbacks=[_named("quiet", "observer")])) is None
    assert requested_restart(SimpleNamespace(callbacks=[asking])) == "/ckpt/step0000009.ckpt"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """12 steps of global batch 8 = micro 4 x accumulation 2, with a NaN gradient at step 3 (skipped by the
    guard) and a grad spike at step 10 (skipped by SkipStepAdamW)."""
    root = tmp_path_factory.mktemp("records")
    shards = make_shards(tmp_path_factory.mktemp("shards"))
    callbacks = [
        probe("RecordWriter"),
        probe("NaNGradAt", step=NAN_AT),
        probe("ScaleGradsAt", steps=[SPIKE_AT]),
    ]
    extra = (*layer(root / "records.yaml", callbacks, optimizer=skip_step_optimizer(rolling=16)),
             "--nonfinite.action", "skip")  # fmt: skip
    fit(tiny_args(root, shards, max_steps=STEPS, extra=extra))
    return root, json.loads((root / "step_records_rank0.json").read_text())


def test_one_record_per_optimizer_step_matching_what_the_module_logged(records):
    root, rows = records
    assert [r["step"] for r in rows] == list(range(STEPS))
    assert [r["tokens_seen"] for r in rows] == [(k + 1) * TOKENS_PER_STEP for k in range(STEPS)]
    for field, tag in (("loss", "train/ce_loss"), ("z_loss", "train/z_loss"), ("lr", "optim/lr")):
        logged = dict(scalars(root, tag))
        assert [r[field] for r in rows] == pytest.approx([logged[k] for k in range(STEPS)], rel=1e-6), field
    norms = dict(scalars(root, "optim/grad_norm"))
    finite = [k for k in range(STEPS) if k != NAN_AT]
    assert [rows[k]["grad_norm"] for k in finite] == pytest.approx([norms[k] for k in finite], rel=1e-6)


def test_record_holds_each_steps_instances_once(records):
    _, rows = records
    ids = [r["instance_ids"] for r in rows]
    assert all(len(step) == 8 for step in ids)  # 2 micro-batches of 4
    flat = [i for step in ids for i in step]
    assert len(set(flat)) == len(flat)  # no instance twice within the epoch's first 96


def test_record_says_which_steps_were_skipped_and_why(records):
    root, rows = records
    assert [(r["step"], r["skip_reason"]) for r in rows if r["skipped"]] == [
        (NAN_AT, "nonfinite"),
        (SPIKE_AT, "spike"),
    ]
    assert [r["step"] for r in rows if not r["finite"]] == [NAN_AT]
    assert [s for s, v in scalars(root, "optim/step_skipped") if v] == [SPIKE_AT]
