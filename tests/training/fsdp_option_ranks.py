"""``python fsdp_option_ranks.py {v1,fsdp2} OUT.json``: two CPU ranks (gloo) that wrap a tiny
``Transformer`` the way olmo2_lit does for each FSDP option value, and write what each value changes.

* ``v1``: Lightning's ``FSDPStrategy`` as olmo2_lit builds it (``olmo2_lit.train.strategies.FSDPStrategy``,
  its block wrap policy and ``MixedPrecision``), wrapped by Lightning's own ``_setup_model`` into torch's
  ``FullyShardedDataParallel`` (``cpu_fsdp.py`` lifts only the need for CUDA). Per ``sharding_strategy``:
  each rank's parameter elements at setup, after forward and after backward; per ``reduce_dtype``: the
  reduced gradients. ``HYBRID_SHARD`` groups ranks by ``torch.cpu.device_count()`` (1), so here that count
  is 2: the two ranks are one node of two devices, as two GPUs of one machine.
* ``fsdp2``: ``shard_fsdp2`` with the dtypes ``FSDP2Adapter.fsdp2_dtypes`` takes from
  ``model.parallelize``, on bf16 stored parameters: the dtype the blocks compute in and the reduced
  gradients.

Each rank's input is hand-made, so its gradient of a block's weight is exactly that input (fp32 values
that bf16 rounds), and the expected reductions are computed here from both ranks' inputs.
"""

import json
import os
import sys
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cpu_fsdp  # noqa: E402,F401  (FSDP v1 on CPU ranks)

from olmo2_lit.model.transformer import Transformer  # noqa: E402

INPUTS = (  # rank 0, rank 1: fp32 values with bits below bf16's 8-bit significand, or whose mean has
    [1 + 2**-10, 1 + 2**-7, 3 + 2**-9, 0.5 + 2**-14],  # (column 1: 0.5 * (1 + 2**-7 + 2**-9), 9 bits)
    [-1 + 2**-13, 2**-9, 1 + 5 * 2**-12, 0.25 + 3 * 2**-15],
)


class Tiny(Transformer):
    """A :class:`Transformer` (so olmo2_lit's wrap policies see its ``blocks``) of two 4x4 blocks read in
    parallel and a head of ones: the gradient of each block's weight is the input, row by row."""

    def __init__(self, dtype=torch.float32) -> None:
        nn.Module.__init__(self)
        self.blocks = nn.ModuleList(nn.Linear(4, 4, bias=False, dtype=dtype) for _ in range(2))
        self.head = nn.Linear(4, 1, bias=False, dtype=dtype)
        with torch.no_grad():
            for block in self.blocks:
                block.weight.copy_(torch.arange(16, dtype=dtype).view(4, 4) / 16)
            self.head.weight.fill_(1.0)
        self.seen = []
        for block in self.blocks:
            block.register_forward_hook(lambda m, args, out: self.seen.append(str(out.dtype)))

    def forward(self, x):
        return self.head(sum(block(x) for block in self.blocks)).sum()


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def rank_input(rank: int) -> torch.Tensor:
    return torch.tensor([INPUTS[rank]], dtype=torch.float32)


def bf16(x: torch.Tensor) -> torch.Tensor:
    return x.bfloat16().float()


def expected_grads() -> dict:
    """The two ranks' mean gradient of a block's weight (each row the mean input), as each precision
    computes it: ``fp32`` exactly; ``bf16_reduced`` from bf16 gradients (a rank's fp32 gradient rounded
    for the reduction, or computed in bf16), halved and summed in bf16; ``bf16_grads_fp32_reduced`` from
    bf16 gradients, reduced exactly in fp32; ``fp32_stored_bf16``: the exact mean, stored in bf16."""
    x0, x1 = rank_input(0)[0], rank_input(1)[0]
    exact, of_bf16 = x0 / 2 + x1 / 2, bf16(x0) / 2 + bf16(x1) / 2
    means = {"fp32": exact, "bf16_reduced": bf16(of_bf16), "bf16_grads_fp32_reduced": of_bf16,
             "fp32_stored_bf16": bf16(exact)}  # fmt: skip
    return {name: mean.repeat(4, 1).tolist() for name, mean in means.items()}


def block_grads(model, full_params) -> list:
    with full_params(model):
        return [block.weight.grad.float().tolist() for block in model.module.blocks]


def run_v1(rank: int) -> dict:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from olmo2_lit.train.strategies import FSDPStrategy

    def setup(**options):
        strategy = FSDPStrategy(param_dtype="float32", **options)
        strategy.parallel_devices = [torch.device("cpu")] * 2
        # HYBRID_SHARD shards within a node of torch.<device>.device_count() ranks and replicates across
        # nodes; torch.cpu counts 1 (then torch clamps each one-rank node to NO_SHARD and never averages
        # the gradients), so here the two ranks are one node of two devices, as two GPUs of one machine.
        with mock.patch.object(torch.cpu, "device_count", lambda: 2):
            return strategy._setup_model(Tiny())

    def full_params(model):
        return FSDP.summon_full_params(model, with_grads=True)

    out = {"full": numel(Tiny())}
    for sharding in ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD"):
        model = setup(sharding_strategy=sharding)
        blocks = model.module.blocks
        seen = {"setup": numel(model), "blocks_setup": sum(map(numel, blocks))}
        loss = model(rank_input(rank))
        seen["blocks_after_forward"] = sum(map(numel, blocks))
        loss.backward()
        seen["blocks_after_backward"] = sum(map(numel, blocks))
        seen["grads"] = block_grads(model, full_params)
        out[sharding] = seen
    for reduce in ("float32", "bfloat16"):
        model = setup(reduce_dtype=reduce)
        model(rank_input(rank)).backward()
        out[f"reduce_{reduce}"] = block_grads(model, full_params)
    return out


def run_fsdp2(rank: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh

    from olmo2_lit.train.parallelize import ParallelizeConfig, shard_fsdp2
    from olmo2_lit.train.strategies import FSDP2Adapter

    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("data_parallel",))
    adapter = FSDP2Adapter(strategy=None)
    out = {}
    for name, stored, options in (
        ("stored_bf16", torch.bfloat16, {}),
        ("stored_bf16_param_float32", torch.bfloat16, {"fsdp_param_dtype": "float32"}),
        ("param_bfloat16", torch.float32, {"fsdp_param_dtype": "bfloat16"}),
        ("reduce_float32", torch.float32, {"fsdp_param_dtype": "bfloat16", "fsdp_reduce_dtype": "float32"}),
        ("reduce_bfloat16", torch.float32, {"fsdp_param_dtype": "bfloat16", "fsdp_reduce_dtype": "bfloat16"}),
    ):
        model = Tiny(dtype=stored)
        param_dtype, reduce_dtype = adapter.fsdp2_dtypes(ParallelizeConfig(**options))
        shard_fsdp2(model, mesh, param_dtype=param_dtype, reduce_dtype=reduce_dtype)
        model(rank_input(rank).to(param_dtype or stored)).backward()
        grads = [block.weight.grad.full_tensor() for block in model.blocks]
        out[name] = {"compute": sorted(set(model.seen)), "grad_dtype": str(grads[0].dtype),
                     "grads": [g.float().tolist() for g in grads]}  # fmt: skip
    return out


def main(rank: int, mode: str, out: str, init: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        seen = run_v1(rank) if mode == "v1" else run_fsdp2(rank)
        seen["expected"] = expected_grads()
        gathered = [None, None]
        dist.all_gather_object(gathered, seen)
        if rank == 0:
            Path(out).write_text(json.dumps(gathered))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    init = f"file://{Path(out).with_suffix('.store').resolve()}"
    torch.multiprocessing.spawn(main, args=(mode, out, init), nprocs=2)
