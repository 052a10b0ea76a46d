"""Resume FSDP2 from one ``.ckpt`` file: DDP's, one device's, or ``olmo2-lit convert consolidate``'s.

Lightning's ``ModelParallelStrategy`` loads such a file too, but it gives the optimizer state's numbered
parameters names in ``module.parameters()`` order (``FSDP.rekey_optim_state_dict`` without the optimizer),
while ``torch.optim.Optimizer.state_dict()`` numbers them in param-group order. OLMo 2's groups put the
embeddings last (no weight decay), so Adam's moments of one parameter went to another: a shape error, or,
between parameters of one shape, a silently wrong resume. Here the numbers are turned into names from
the optimizer's own groups, and torch's ``set_model_state_dict`` / ``set_optimizer_state_dict`` shard the
full tensors onto the mesh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from olmo2_lit.train.parallelize import parameter_name


def load_full_checkpoint(
    path: Path, module: torch.nn.Module, optimizers: list, *, strict: bool
) -> dict[str, Any]:
    """Load the weights and optimizer states of the file ``path`` into the sharded ``module`` and its
    ``optimizers``; return the rest of the checkpoint (loops, schedulers, data position...) for Lightning."""
    checkpoint = torch.load(path, mmap=True, map_location="cpu", weights_only=False)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=strict)
    set_model_state_dict(module, checkpoint.pop("state_dict"), options=options)
    for optimizer, state in zip(optimizers, checkpoint.get("optimizer_states", [])):
        set_optimizer_state_dict(
            module, optimizer, optim_state_dict=name_keyed(state, optimizer, module), options=options
        )
    return checkpoint


def name_keyed(
    state: dict[str, Any], optimizer: torch.optim.Optimizer, module: torch.nn.Module
) -> dict[str, Any]:
    """``optimizer.state_dict()``-style state with parameters numbered in param-group order, keyed by the
    parameters' names in ``module`` instead (as ``set_optimizer_state_dict`` takes a full state dict)."""
    name_of = {id(p): parameter_name(n) for n, p in module.named_parameters()}
    names = [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]
    return {
        "state": {names[i]: value for i, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [names[i] for i in group["params"]]} for group in state["param_groups"]
        ],
    }
