"""``python cpu_fsdp.py fit ARGS``: ``olmo2-lit fit`` with Lightning's real ``FSDPStrategy`` (FSDP v1) and
torch's ``FullyShardedDataParallel`` on CPU ranks (gloo), for the tests.

Our ``FSDPStrategy`` refuses a machine without CUDA, and torch's FSDP v1 looks for an accelerator unless
it is given a device. This lifts exactly those, before the CLI starts (Lightning's launcher re-runs this
script for every rank, so each rank gets them):

* our ``require_cuda``;
* ``FullyShardedDataParallel(device_id=None)``, which Lightning passes on CPU (the root device has no
  index), becomes ``device_id=torch.device("cpu")``: FSDP then runs its CUDA-like stream calls on
  ``torch.cpu``;
* Lightning's full (one-file) state dict asks FSDP to "offload to CPU" the gathered tensors; with
  parameters already on the CPU, torch frees the gathered storage before cloning it (a segfault on
  rank 0), so here the tensors are gathered without the offload, where they are anyway.

Sharding, flat parameters, mixed precision, the optimizer and checkpoint save/load (sharded and full) are
torch's and Lightning's own.
"""

import sys

import lightning.pytorch.strategies.fsdp as lightning_fsdp
import torch
from torch.distributed.fsdp import (
    FullOptimStateDictConfig,
    FullStateDictConfig,
    FullyShardedDataParallel,
    StateDictType,
)

import olmo2_lit.train.strategies as strategies

strategies.require_cuda = lambda name: None

_init = FullyShardedDataParallel.__init__


def _init_on_cpu(self, module, *args, device_id=None, **kwargs):
    if device_id is None and not torch.cuda.is_available():
        device_id = torch.device("cpu")
    _init(self, module, *args, device_id=device_id, **kwargs)


FullyShardedDataParallel.__init__ = _init_on_cpu


def _full_state_dict_context(module, world_size, rank0_only=True):
    return FullyShardedDataParallel.state_dict_type(
        module=module,
        state_dict_type=StateDictType.FULL_STATE_DICT,
        state_dict_config=FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
        optim_state_dict_config=FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
    )


lightning_fsdp._get_full_state_dict_context = _full_state_dict_context

if __name__ == "__main__":
    from olmo2_lit.cli import main

    main(sys.argv[1:])
