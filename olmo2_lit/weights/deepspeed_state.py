"""A DeepSpeed ZeRO checkpoint directory (stage 1, 2 or 3) as one Lightning checkpoint dict, with Adam state.

Lightning's ``DeepSpeedStrategy`` saves a directory: each rank's ``*_optim_states.pt`` (its partition of the
fp32 master weights and of Adam's moments) and the model-states file, which carries Lightning's training
state (loops, callbacks, LR schedulers, data position, ``olmo2_lit``) as DeepSpeed's client state. This
module reassembles the full fp32 weights *and* every parameter's ``exp_avg``/``exp_avg_sq``/``step``, keyed
as ``torch.optim.Optimizer.state_dict()`` keys them (by position in param-group order), so a DDP or
single-device run resumes the ZeRO run with its optimizer (``olmo2-lit fit --ckpt_path OUT``).

The layout read here (DeepSpeed 0.18: ``runtime/zero/stage3.py``, ``runtime/zero/stage_1_and_2.py``; the
weights are laid out as ``deepspeed/utils/zero_to_fp32.py`` reads them) is that of a *flat group*: a rank's
fp32 partition, with the base optimizer's state for it element for element:

* ZeRO-3 (``fp32_flat_groups``): one flat group per sub-group; every parameter is cut into
  ``world_size`` parts of ``ceil(numel / world_size)`` elements (the last padded), and a rank's flat group
  is its part of each parameter of the sub-group, one after the other (``param_shapes[k]``).
* ZeRO-1/2 (``single_partition_of_fp32_groups``): one flat group per param group; the group's parameters
  are concatenated in order and padded, and rank r holds the r-th equal slice.

In both, the base optimizer's ``param_groups`` are the module's own (name, lr, weight decay...), each
listing its flat groups by index in ``params``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Union

import torch

from olmo2_lit.errors import CheckpointError

Tensors = dict[str, torch.Tensor]
Shapes = dict[str, torch.Size]

#: Keys of DeepSpeed's engine in the model-states file; everything else there is Lightning's checkpoint.
ENGINE_KEYS = frozenset(
    {"module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
     "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd", "sparse_tensor_module_names",
     "csr_tensor_module_names", "skipped_steps", "global_steps", "global_samples", "dp_world_size",
     "mp_world_size", "ds_config", "ds_version"}
)  # fmt: skip


def load_deepspeed(path: Union[str, Path], *, with_optimizer: bool = True) -> dict[str, Any]:
    """The DeepSpeed checkpoint directory ``path`` as a Lightning checkpoint dict: ``state_dict`` (full fp32
    tensors), ``optimizer_states`` (one optimizer, index-keyed) and Lightning's state, all on the CPU.

    Args:
        path: the directory Lightning's ``DeepSpeedStrategy`` saved (with its ``latest`` file).
        with_optimizer: also reassemble Adam's state (needed to resume; not to export the weights).
    """
    # DeepSpeed's own file naming and Lightning's reading of the `latest` tag
    from deepspeed.utils.zero_to_fp32 import get_model_state_file, get_optim_files
    from lightning.pytorch.utilities.deepspeed import ds_checkpoint_dir

    ds_dir = ds_checkpoint_dir(str(path))
    ranks = [torch.load(f, map_location="cpu", mmap=True, weights_only=False)["optimizer_state_dict"]
             for f in get_optim_files(ds_dir)]  # fmt: skip
    stage = int(ranks[0]["zero_stage"])
    model = torch.load(get_model_state_file(ds_dir, stage), map_location="cpu", weights_only=False)
    if model.get("frozen_param_shapes"):
        raise CheckpointError(
            f"{path}: frozen parameters are not supported here; use DeepSpeed's zero_to_fp32.py in that "
            "directory for the weights"
        )
    if stage == 3:
        flats, base = "fp32_flat_groups", "optimizer_state_dict"
        unflatten = _unflatten_zero3
    else:
        flats, base = "single_partition_of_fp32_groups", "base_optimizer_state"
        unflatten = _unflatten_zero12
    shapes: list[Shapes] = model["param_shapes"]
    state_dict = {name: model["module"][name].float() for name in model["buffer_names"]}
    for k, group_shapes in enumerate(shapes):
        state_dict.update(unflatten([r[flats][k] for r in ranks], group_shapes, path))
    for alias, name in model["shared_params"].items():
        state_dict[alias] = state_dict[name]
    checkpoint = {key: value for key, value in model.items() if key not in ENGINE_KEYS}
    checkpoint["state_dict"] = state_dict
    if with_optimizer:
        checkpoint["optimizer_states"] = [_optimizer_state([r[base] for r in ranks], shapes, unflatten, path)]
    return checkpoint


def _optimizer_state(ranks: list[dict], shapes: list[dict], unflatten, path) -> dict[str, Any]:
    """The base optimizer's state of every rank, as one optimizer's ``state_dict`` over full parameters."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    groups = []
    for group in ranks[0]["param_groups"]:
        ids = []
        for k in group["params"]:  # the flat groups of this param group
            flat_state = [r["state"][k] for r in ranks]
            per_key = {}
            for key, value in flat_state[0].items():
                if value.dim() == 0:  # Adam's step: one per flat group, the same for all its parameters
                    per_key[key] = {name: value.clone() for name in shapes[k]}
                else:  # new tensors, one per parameter
                    per_key[key] = unflatten([s[key] for s in flat_state], shapes[k], path)
            for name in shapes[k]:
                ids.append(len(state))
                state[ids[-1]] = {key: values[name] for key, values in per_key.items()}
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
    return {"state": state, "param_groups": groups}


def _unflatten_zero3(flats: list[torch.Tensor], shapes: Shapes, path) -> Tensors:
    world, offset, out = len(flats), 0, {}
    for name, shape in shapes.items():
        part = math.ceil(shape.numel() / world)
        whole = torch.cat([flat[offset : offset + part] for flat in flats])
        out[name] = whole[: shape.numel()].view(shape).clone()
        offset += part
    if offset != flats[0].numel():
        raise CheckpointError(f"{path}: ZeRO-3 partitions of {flats[0].numel()} values, shapes of {offset}")
    return out


def _unflatten_zero12(flats: list[torch.Tensor], shapes: Shapes, path) -> Tensors:
    whole, offset, out = torch.cat(flats), 0, {}
    for name, shape in shapes.items():
        out[name] = whole[offset : offset + shape.numel()].view(shape).clone()
        offset += shape.numel()
    if not 0 <= whole.numel() - offset < 4 * len(flats):  # at most the alignment padding (2 x world size)
        raise CheckpointError(f"{path}: ZeRO partitions hold {whole.numel()} values, the shapes {offset}")
    return out
