"""The one place that wraps the plain-torch model for training, in the spirit of torchtitan's
``parallelize``: activation checkpointing, per-block ``torch.compile`` and FSDP2 sharding, in that
order, each applied to whatever block class the registry built.

The model code never learns about any of it. Called once from ``OLMo2LitModule.configure_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from olmo2_lit.compat import CHECKPOINT_PREFIX, CheckpointImpl, CheckpointWrapper
from olmo2_lit.model import Transformer

DTypeName = Literal["float32", "bfloat16"]


class BlockCheckpointWrapper(CheckpointWrapper):
    """torch's non-reentrant activation-checkpoint wrapper, owning the marks that module hooks leave.

    ``CheckpointWrapper`` forwards every attribute it lacks to the wrapped block, so the block's methods and
    fields (``flops_per_token``, ``layer_idx``...) read through it. DeepSpeed ZeRO-3 hooks every module,
    children first, and skips building a module's backward hooks when ``hasattr(module, "pre_bwd_fn")``
    (``post_bwd_fn``); through the forwarding, the wrapper would answer with the block's, count its
    gradients on the block and fail (``'ReorderedNormBlock' object has no attribute 'ds_grads_remaining'``).
    These names are not forwarded, so the wrapper gets hooks of its own.
    """

    OWN = frozenset({"pre_bwd_fn", "post_bwd_fn", "ds_grads_remaining", "applied_pre_backward_ref_cnt"})

    def __getattr__(self, name: str):
        if name in self.OWN:
            return torch.nn.Module.__getattr__(self, name)
        return super().__getattr__(name)


@dataclass(kw_only=True)
class ParallelizeConfig:
    """How the model is wrapped for training.

    Attributes:
        activation_checkpointing: wrap each block so its activations are recomputed in the backward pass.
        compile: ``torch.compile`` each block (OLMo-core compiles per block).
        fsdp_param_dtype: under FSDP2 (``ModelParallelStrategy``), the dtype parameters are gathered in for
            compute (OLMo 2 trained with bfloat16); None keeps the stored dtype.
        fsdp_reduce_dtype: under FSDP2, the dtype gradients are reduced in (OLMo 2: float32); None keeps it.
    """

    activation_checkpointing: bool = False
    compile: bool = False
    fsdp_param_dtype: Optional[DTypeName] = None
    fsdp_reduce_dtype: Optional[DTypeName] = None


def parallelize(
    model: Transformer,
    config: ParallelizeConfig,
    *,
    mesh: Optional[DeviceMesh] = None,
    fsdp_dtypes: tuple[Optional[torch.dtype], Optional[torch.dtype]] = (None, None),
) -> None:
    """Wrap ``model``'s blocks in place: checkpointing, then compile, then FSDP2 over ``mesh``.

    Args:
        model: the transformer, with real (not meta) parameters.
        config: what to apply.
        mesh: the strategy's device mesh (``ModelParallelStrategy``); None means no sharding.
        fsdp_dtypes: FSDP2's ``(param_dtype, reduce_dtype)``, as the strategy's adapter resolved them from
            ``config`` (``olmo2_lit.train.strategies.StrategyAdapter.fsdp2_dtypes``).
    """
    for i, block in enumerate(model.blocks):
        if config.activation_checkpointing:
            # A wrapper module, not a patched forward; its state_dict keys are the block's own.
            block = BlockCheckpointWrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
            model.blocks[i] = block
        if config.compile:
            block.compile()
    if mesh is not None:
        shard_fsdp2(model, mesh, param_dtype=fsdp_dtypes[0], reduce_dtype=fsdp_dtypes[1])


def shard_fsdp2(model: Transformer, mesh: DeviceMesh, *, param_dtype=None, reduce_dtype=None) -> None:
    """Shard each block, then the root (embeddings, final norm, LM head), over the data-parallel mesh.

    Args:
        model: the transformer, with real (not meta) parameters.
        mesh: the strategy's device mesh; its ``data_parallel`` dimension is used.
        param_dtype: dtype parameters are gathered in for compute (OLMo 2: bf16); None keeps them.
        reduce_dtype: dtype gradients are reduced in (OLMo 2: fp32); None keeps them.
    """
    names = mesh.mesh_dim_names or ()
    dp_mesh = mesh["data_parallel"] if "data_parallel" in names else mesh
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    for block in model.blocks:
        fully_shard(block, mesh=dp_mesh, mp_policy=policy)
    fully_shard(model, mesh=dp_mesh, mp_policy=policy)


def parameter_name(name: str) -> str:
    """A parameter's name as the unwrapped model has it (without the checkpoint wrapper's prefix).

    ``named_parameters()`` of a wrapped block shows torch's wrapper prefix; its ``state_dict`` does not.
    Param-group patterns and diagnostics use this form so they are the same with or without wrapping.
    """
    return name.replace(CHECKPOINT_PREFIX, "")


def dtype_of(name: Optional[DTypeName]) -> Optional[torch.dtype]:
    """The torch dtype of a dtype name; None stays None."""
    return None if name is None else getattr(torch, name)
