"""The data position on its own: advancing, rolling over, skipping and its checkpoint state."""

import pytest

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.position import PositionTracker

T = 16
# 2 ranks x micro 2 = 4 instances per micro-step; an epoch of 21 instances ends after 2 global batches of 8
PLAN = BatchPlan(sequence_length=T, global_batch=8, micro_batch=2, world_size=2)


def test_advance_counts_tokens_and_rolls_over_at_the_last_whole_global_batch():
    tracker = PositionTracker(plan=PLAN, epoch_size=21)
    tracker.advance(12)
    assert (tracker.position.epoch, tracker.position.instances, tracker.tokens_seen) == (0, 12, 12 * T)
    tracker.advance(4)  # 16 = the end of epoch 0: the 5 instances past it are never used
    assert (tracker.position.epoch, tracker.position.instances, tracker.tokens_seen) == (1, 0, 16 * T)


def test_skip_rounds_up_to_a_micro_step_of_every_rank():
    tracker = PositionTracker(plan=PLAN, epoch_size=21)
    tracker.skip_tokens(5 * T + 1)  # 5.06 instances -> 8
    assert (tracker.position.instances, tracker.tokens_seen) == (8, 8 * T)
    with pytest.raises(ValueError, match="tokens >= 0"):
        tracker.skip_tokens(-1)


def test_state_round_trips_and_a_resume_with_another_plan_keeps_the_token():
    saved = PositionTracker(plan=PLAN, epoch_size=21)
    saved.advance(16 + 4)
    state = saved.state_dict()
    assert state == {"epoch": 1, "tokens": 4 * T, "total_tokens": 20 * T, "sequence_length": T}
    resumed = PositionTracker(plan=PLAN, epoch_size=21)
    held = resumed.position
    resumed.load_state_dict(state)
    assert resumed.position is held  # changed in place: the train dataset holds this object
    assert resumed.state_dict() == state
    wider = PositionTracker(plan=BatchPlan(sequence_length=T, global_batch=8, micro_batch=8), epoch_size=21)
    with pytest.warns(UserWarning, match="replaying 4 instances"):
        wider.load_state_dict(state)  # 4 is not a multiple of 8: back to the epoch's start
    assert (wider.position.epoch, wider.position.instances, wider.tokens_seen) == (1, 0, 16 * T)
