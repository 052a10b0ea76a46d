"""The strategy adapter (``olmo2_lit.train.strategies``): the one place that knows how loss scaling, the grad
norm, clipping and mixed-precision dtypes differ between strategies.

Guards against a strategy mapped to the wrong adapter (a DeepSpeed run scaled like DDP: gradients off by
the accumulation; FSDP v1's shards normed without summing over ranks), an FSDP2 dtype set under another
strategy and silently ignored, and a DeepSpeed-only rule leaking into the others.
"""

import math

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from training_helpers import fit, tiny_args

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.errors import ConfigError
from olmo2_lit.train.parallelize import ParallelizeConfig
from olmo2_lit.train.strategies import (
    DeepSpeedAdapter,
    FSDP2Adapter,
    FSDPv1Adapter,
    StrategyAdapter,
    adapter_for,
)

PLAN = BatchPlan(sequence_length=64, global_batch=8, micro_batch=2).with_world_size(2)  # accumulation 2


def test_each_strategy_gets_its_adapter():
    pytest.importorskip("deepspeed")
    assert type(adapter_for(None)) is StrategyAdapter
    assert type(adapter_for(DDPStrategy())) is StrategyAdapter
    assert type(adapter_for(ModelParallelStrategy())) is FSDP2Adapter
    assert type(adapter_for(FSDPStrategy())) is FSDPv1Adapter
    assert type(adapter_for(DeepSpeedStrategy())) is DeepSpeedAdapter


def test_loss_scale_is_olmo_cores_normalization_and_deepspeed_undoes_its_second_division():
    # Lightning divides by the accumulation (2) and DDP averages over the ranks (2): the scale puts
    # both back and divides by the global batch's target tokens, 8 x 63.
    assert StrategyAdapter(None).loss_scale(PLAN) == pytest.approx(2 * 2 / (8 * 63))
    assert DeepSpeedAdapter(None).loss_scale(PLAN) == pytest.approx(2 * 2 * 2 / (8 * 63))


def test_fsdp_v1_sums_the_squared_norms_of_its_shards_over_ranks():
    model = torch.nn.Linear(3, 4)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    local = math.sqrt(4.0 * 16)  # 16 gradient entries of 2.0
    three_ranks = type("Strategy", (), {"reduce": lambda self, x, reduce_op: x * 3})()
    assert StrategyAdapter(None).grad_norm(model).item() == pytest.approx(local)
    assert FSDPv1Adapter(three_ranks).grad_norm(model).item() == pytest.approx(local * math.sqrt(3))


def test_clipping_is_the_engines_under_deepspeed_and_ours_elsewhere():
    model = torch.nn.Linear(3, 4)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    norm = torch.tensor(8.0)
    DeepSpeedAdapter(None).clip(model, 1.0, norm)
    assert all(torch.equal(p.grad, torch.full_like(p, 2.0)) for p in model.parameters())
    StrategyAdapter(None).clip(model, 1.0, norm)
    assert all(torch.allclose(p.grad, torch.full_like(p, 2.0 / 8.0), rtol=1e-5) for p in model.parameters())


@pytest.mark.parametrize(
    ("adapter", "names"),
    [
        (StrategyAdapter(None), "trainer.precision"),
        (FSDPv1Adapter(None), "trainer.strategy.init_args.param_dtype"),
        (DeepSpeedAdapter(None), "trainer.precision"),
    ],
)
@pytest.mark.parametrize("field", ["fsdp_param_dtype", "fsdp_reduce_dtype"])
def test_fsdp2_dtypes_under_another_strategy_are_refused_naming_the_setting(adapter, names, field):
    with pytest.raises(
        ConfigError, match=rf"model\.parallelize\.{field}: bfloat16 applies only under FSDP2"
    ) as err:
        adapter.fsdp2_dtypes(ParallelizeConfig(**{field: "bfloat16"}))
    assert names in str(err.value) and adapter.name in str(err.value)
    assert adapter.fsdp2_dtypes(ParallelizeConfig()) == (None, None)


def test_fsdp2_takes_its_dtypes_from_model_parallelize():
    config = ParallelizeConfig(fsdp_param_dtype="bfloat16", fsdp_reduce_dtype="float32")
    assert FSDP2Adapter(None).fsdp2_dtypes(config) == (torch.bfloat16, torch.float32)


def test_a_fit_with_an_fsdp2_dtype_on_one_device_is_refused(shards, tmp_path):
    extra = ("--model.parallelize.fsdp_param_dtype", "bfloat16")
    with pytest.raises(ConfigError, match="fsdp_param_dtype: bfloat16 applies only under FSDP2"):
        fit(tiny_args(tmp_path, shards, max_steps=1, extra=extra))
