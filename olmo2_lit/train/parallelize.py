"""The one place that wraps the plain-torch model for training, in the spirit of torchtitan's
``parallelize``: float8 linear layers, activation checkpointing, per-block ``torch.compile`` and FSDP2
sharding, in that order (torchtitan's), each applied to whatever block class the registry built.

The model code never learns about any of it. Called once from ``OLMo2LitModule.configure_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from olmo2_lit.compat import CHECKPOINT_PREFIX, CheckpointImpl, CheckpointWrapper
from olmo2_lit.model import Transformer
from olmo2_lit.train.float8 import Float8Recipe, convert_blocks_to_float8

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
        compile: ``torch.compile`` each block (OLMo-core compiles per block). ``auto`` compiles when the
            model trains on a CUDA GPU (about 1.5x eager on an H100) and not on a CPU (1.08x there, for
            ~35 s of compilation); decided at the model's first forward, from its input's device.
            true/false force it (``--model.parallelize.compile false``).
        float8: run the blocks' linear layers in float8 with this torchao recipe (``tensorwise`` as
            OLMo-core and torchtitan); the output projection, embeddings and norms keep their precision.
            Needs torchao and a GPU of compute capability >= 8.9 (``olmo2_lit/train/float8.py``). None: off.
        float8_emulate: with ``float8``, emulate the float8 matmuls in fp32 on any device (tests only).
        fsdp_param_dtype: under FSDP2 (``ModelParallelStrategy``), the dtype parameters are gathered in for
            compute (OLMo 2 trained with bfloat16); None keeps the stored dtype.
        fsdp_reduce_dtype: under FSDP2, the dtype gradients are reduced in (OLMo 2: float32); None keeps it.
    """

    activation_checkpointing: bool = False
    compile: Union[bool, Literal["auto"]] = "auto"
    float8: Optional[Float8Recipe] = None
    float8_emulate: bool = False
    fsdp_param_dtype: Optional[DTypeName] = None
    fsdp_reduce_dtype: Optional[DTypeName] = None


def parallelize(
    model: Transformer,
    config: ParallelizeConfig,
    *,
    mesh: Optional[DeviceMesh] = None,
    fsdp_dtypes: tuple[Optional[torch.dtype], Optional[torch.dtype]] = (None, None),
) -> None:
    """Wrap ``model``'s blocks in place: float8, checkpointing, then compile, then FSDP2 over ``mesh``.

    Args:
        model: the transformer, with real (not meta) parameters.
        config: what to apply.
        mesh: the strategy's device mesh (``ModelParallelStrategy``); None means no sharding.
        fsdp_dtypes: FSDP2's ``(param_dtype, reduce_dtype)``, as the strategy's adapter resolved them from
            ``config`` (``olmo2_lit.train.strategies.StrategyAdapter.fsdp2_dtypes``).
    """
    if config.float8 is not None:
        convert_blocks_to_float8(model, config.float8, emulate=config.float8_emulate)
    for i, block in enumerate(model.blocks):
        if config.activation_checkpointing:
            # A wrapper module, not a patched forward; its state_dict keys are the block's own.
            block = BlockCheckpointWrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
            model.blocks[i] = block
        if config.compile is True:
            block.compile()
    if config.compile == "auto":
        compile_blocks_on_cuda(model)
    if mesh is not None:
        shard_fsdp2(model, mesh, param_dtype=fsdp_dtypes[0], reduce_dtype=fsdp_dtypes[1])


def compile_blocks_on_cuda(model: Transformer) -> None:
    """``compile: auto``: at the model's first forward, compile each block if the input is on a CUDA device.

    The model is built and wrapped on the CPU before the strategy moves or shards it, so the device it
    trains on is known only then. ``Module.compile`` keeps the state_dict keys and composes with the
    checkpoint wrapper and FSDP2 whenever it is called (dynamo skips FSDP2's hooks).
    """
    model.register_forward_pre_hook(CompileOnCuda(), with_kwargs=True)


class CompileOnCuda:
    """The forward pre-hook of ``compile: auto`` (an object: a deep copy of the model decides for itself)."""

    def __init__(self) -> None:
        self.decided = False

    def __call__(self, model: Transformer, args: tuple, kwargs: dict) -> None:
        if self.decided:
            return
        self.decided = True
        input_ids = args[0] if args else kwargs["input_ids"]
        if input_ids.device.type == "cuda":
            for block in model.blocks:
                block.compile()


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
