"""Resume FSDP2 or FSDP (v1) from one ``.ckpt`` file: DDP's, one device's, or ``olmo2-lit convert
consolidate``'s.

Lightning's ``ModelParallelStrategy`` and ``FSDPStrategy`` load such a file too, but they give the
optimizer state's numbered parameters names in ``module.parameters()`` order
(``FSDP.rekey_optim_state_dict`` without the optimizer), while ``torch.optim.Optimizer.state_dict()``
numbers them in param-group order. OLMo 2's groups put the embeddings last (no weight decay), so Adam's
moments of one parameter went to another: a shape error, or, between parameters of one shape, a silently
wrong resume. Here the numbers are turned into names through the saved param groups, matched to the
optimizer's own, and torch's ``set_model_state_dict`` / ``set_optimizer_state_dict`` shard the full
tensors onto the ranks.
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

from olmo2_lit.errors import CheckpointError
from olmo2_lit.train.parallelize import parameter_name

_FSDP_V1_PREFIX = "_fsdp_wrapped_module."


def load_full_checkpoint(
    path: Path, module: torch.nn.Module, optimizers: list, *, strict: bool, broadcast: bool = True
) -> dict[str, Any]:
    """Load the weights and optimizer states of the file ``path`` into the sharded ``module`` and its
    ``optimizers``; return the rest of the checkpoint (loops, schedulers, data position...) for Lightning.

    ``broadcast``: rank 0's tensors are sent to the others (FSDP2); torch supports it only for DTensor
    shards, so under FSDP v1 every rank reads the file (memory-mapped)."""
    checkpoint = torch.load(path, mmap=True, map_location="cpu", weights_only=False)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=broadcast, strict=strict)
    set_model_state_dict(module, checkpoint.pop("state_dict"), options=options)
    for optimizer, state in zip(optimizers, checkpoint.get("optimizer_states", [])):
        try:
            keyed = name_keyed(state, optimizer, module)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        set_optimizer_state_dict(module, optimizer, optim_state_dict=keyed, options=options)
    return checkpoint


def name_keyed(
    state: dict[str, Any], optimizer: torch.optim.Optimizer, module: torch.nn.Module
) -> dict[str, Any]:
    """``optimizer.state_dict()``-style state with numbered parameters, keyed by the parameters' names in
    ``module`` instead (as ``set_optimizer_state_dict`` takes a full state dict).

    The numbers are matched to parameters through the saved param groups, position by position, as
    ``torch.optim.Optimizer.load_state_dict`` does: so both numberings load, torch's (param-group
    order: DDP, one device, ``consolidate``) and Lightning's FSDP v1 ``full`` files' (module order).
    """
    name_of = {id(p): parameter_name(n).replace(_FSDP_V1_PREFIX, "") for n, p in module.named_parameters()}
    sizes = [len(g["params"]) for g in state["param_groups"]]
    if sizes != [len(g["params"]) for g in optimizer.param_groups]:
        raise CheckpointError(
            f"the checkpoint's optimizer has param groups of {sizes} parameters, this run's of "
            f"{[len(g['params']) for g in optimizer.param_groups]}: resume with the same "
            "model.param_groups, or start from its weights with model.init_from"
        )
    saved = (i for g in state["param_groups"] for i in g["params"])
    current = (name_of[id(p)] for g in optimizer.param_groups for p in g["params"])
    name = dict(zip(saved, current))
    return {
        "state": {name[i]: value for i, value in state["state"].items()},
        "param_groups": [{**g, "params": [name[i] for i in g["params"]]} for g in state["param_groups"]],
    }
