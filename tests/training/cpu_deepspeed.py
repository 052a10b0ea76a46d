"""``python cpu_deepspeed.py fit ARGS``: ``olmo2-lit fit`` with Lightning's real ``DeepSpeedStrategy`` and
DeepSpeed's real engine on CPU ranks (gloo), for the tests. Run with ``DS_ACCELERATOR=cpu``.

Lightning (2.6) and our strategy refuse anything but CUDA for DeepSpeed, and a few device-index checks
assume GPUs. This lifts exactly those, before the CLI starts (Lightning's launcher re-runs this script for
every rank, so each rank gets them):

* our ``require_cuda`` and Lightning's ``setup_environment`` CUDA check;
* Lightning's "device indices match local ranks" check (CPU devices have no index) and the engine's
  ``device_rank`` (Lightning passes the root device's index, ``None`` on CPU; the local rank here);
* gloo instead of NCCL, and DeepSpeed's shared-memory all-reduce (a C++ op built on first use) off;
* DeepSpeed's ``all_gather_into_tensor`` under ``no_grad``: on gloo, torch 2.13 gathers into views of a
  flat group that requires grad, which autograd refuses (ZeRO-1/2's parameter all-gather after the step).

Nothing in the training path (module, optimizer, ZeRO partitioning, clipping, checkpoint save/load) is
replaced.
"""

import importlib
import os
import sys

import deepspeed
import deepspeed.ops
import lightning.pytorch.strategies.deepspeed as lightning_deepspeed
import torch
from lightning.pytorch.strategies import DDPStrategy

import olmo2_lit.train.strategies as strategies

deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
strategies.require_cuda = lambda name: None
lightning_deepspeed.DeepSpeedStrategy.setup_environment = DDPStrategy.setup_environment
lightning_deepspeed.DeepSpeedStrategy._get_process_group_backend = lambda self: "gloo"
lightning_deepspeed._validate_device_index_selection = lambda devices: None

_initialize = deepspeed.initialize


def initialize(*args, **kwargs):
    if kwargs.get("args") is not None and kwargs["args"].device_rank is None:
        kwargs["args"].device_rank = int(os.environ.get("LOCAL_RANK", 0))
    return _initialize(*args, **kwargs)


deepspeed.initialize = initialize

backend = importlib.import_module("deepspeed.comm.torch").TorchBackend
_all_gather_into_tensor = backend.all_gather_into_tensor


def all_gather_into_tensor(self, *args, **kwargs):
    with torch.no_grad():
        return _all_gather_into_tensor(self, *args, **kwargs)


backend.all_gather_into_tensor = all_gather_into_tensor

if __name__ == "__main__":
    from olmo2_lit.cli import main

    main(sys.argv[1:])
