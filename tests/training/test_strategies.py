"""Strategy fragments: CUDA-only engines refused on CPU before any work with the fragment to use instead,
and FSDP (v1)'s wrap policy choosing exactly the blocks, whatever wraps them.

Guards against a DeepSpeed/FSDP selection that starts work (data, model) and then fails deep inside
Lightning or torch, and against an FSDP policy that wraps nothing (no sharding: 117 GB per GPU at 7B),
wraps inside the checkpoint wrapper, or wraps the attention/MLP submodules one by one.
"""

from pathlib import Path

import pytest
import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper
from training_helpers import fit, tiny_args

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.parallelize import ParallelizeConfig, parallelize
from olmo2_lit.train.strategies import BlockWrapPolicy

STRATEGIES = Path(__file__).resolve().parents[2] / "experiments" / "strategies"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize(
    "extra, names",
    [
        (("--config", str(STRATEGIES / "fsdp.yaml")), "fsdp.yaml"),
        (("--config", str(STRATEGIES / "deepspeed_zero2.yaml")), "deepspeed_zero2.yaml"),
        (("--config", str(STRATEGIES / "deepspeed_zero3.yaml")), "deepspeed_zero3.yaml"),
        (("--trainer.strategy", "deepspeed_stage_3"), "deepspeed_stage_3"),
        (("--trainer.strategy", "fsdp"), "fsdp"),
    ],
)
def test_cuda_only_strategy_on_cpu_names_the_fragment_to_use(shards, tmp_path, capsys, extra, names):
    with pytest.raises(SystemExit):
        fit(tiny_args(tmp_path, shards, max_steps=2, extra=extra))
    err = capsys.readouterr().err
    assert names in err and "runs only on CUDA GPUs" in err
    assert "experiments/strategies/fsdp2.yaml" in err and "experiments/strategies/ddp.yaml" in err
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.parametrize("checkpointing", [False, True])
def test_fsdp_wrap_policy_wraps_each_block_as_built(checkpointing):
    config = ModelConfig(d_model=32, n_layers=3, n_heads=4, mlp_hidden=64, vocab_size=256).resolved()
    model = Transformer(config)
    parallelize(model, ParallelizeConfig(activation_checkpointing=checkpointing))
    wrapped = BlockWrapPolicy()._run_policy(model, set(), {"sync_module_states": True})
    assert list(wrapped) == list(model.blocks) and len(wrapped) == 3  # each block, nothing else
    assert all(isinstance(m, CheckpointWrapper) == checkpointing for m in wrapped)
    assert all(kwargs == {"sync_module_states": True} for kwargs in wrapped.values())
