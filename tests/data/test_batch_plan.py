"""The batch plan: one owner of global batch, micro batch, world size, accumulation and tokens per step."""

import pytest

from olmo2_lit.data.batch_plan import BatchPlan


def test_derived_sizes_of_the_7b_recipe():
    """OLMo 2 7B: 1024 x 4096 = 4,194,304 tokens per step = micro 4 x accum 2 x 128 GPUs (OLMO2.md §2.3)."""
    plan = BatchPlan(sequence_length=4096, global_batch=1024, micro_batch=4, world_size=128)
    assert plan.accumulation == 2
    assert plan.tokens_per_step == 4_194_304
    assert plan.instances_per_micro_step == 512


def test_step_boundaries_follow_the_accumulation():
    plan = BatchPlan(sequence_length=8, global_batch=12, micro_batch=2, world_size=2)
    assert plan.accumulation == 3
    assert [plan.ends_step(i) for i in range(7)] == [False, False, True, False, False, True, False]


def test_another_world_size_keeps_the_global_batch():
    plan = BatchPlan(sequence_length=64, global_batch=8, micro_batch=4).with_world_size(2)
    assert (plan.world_size, plan.accumulation, plan.tokens_per_step) == (2, 1, 512)
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size 4 x world size 4 = 16"):
        plan.with_world_size(4)


@pytest.mark.parametrize("field", ["sequence_length", "global_batch", "micro_batch", "world_size"])
def test_sizes_must_be_positive(field):
    sizes = dict(sequence_length=8, global_batch=8, micro_batch=2, world_size=1) | {field: 0}
    with pytest.raises(ValueError, match="must be >= 1"):
        BatchPlan(**sizes)


def test_the_plan_is_frozen():
    plan = BatchPlan(sequence_length=8, global_batch=8, micro_batch=2)
    with pytest.raises(AttributeError):
        plan.global_batch = 16
