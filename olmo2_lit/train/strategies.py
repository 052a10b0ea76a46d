"""Distributed strategies selected by one flag: ``--config experiments/strategies/<name>.yaml``.

Thin subclasses of Lightning's own strategies; each sets OLMo 2's defaults and refuses, before any
work, a machine it cannot run on:

* :class:`FSDP2Strategy` - ``ModelParallelStrategy`` with data-parallel size = world size, so
  ``olmo2_lit.train.parallelize`` shards each block with ``fully_shard``; sharded checkpoints are torch
  distributed checkpoint directories. Runs on CPU (gloo) and GPU.
* :class:`FSDPStrategy` - Lightning's FSDP (v1) wrapping each block the registry built
  (:class:`BlockWrapPolicy`), with OLMo 2's mixed precision (bf16 parameters, fp32 reduction). CUDA only.
* :class:`DeepSpeedStrategy` - ZeRO stage 2 or 3 around our own AdamW and param groups. CUDA only.

Every checkpoint directory is written atomically (:func:`save_directory_atomically`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy as _DeepSpeedStrategy
from lightning.pytorch.strategies import FSDPStrategy as _FSDPStrategy
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.fsdp import MixedPrecision

from olmo2_lit import compat
from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.errors import ConfigError
from olmo2_lit.model import Transformer
from olmo2_lit.train.checkpoint_kind import require_kind
from olmo2_lit.train.checkpoint_publish import publish, stage, staging_path
from olmo2_lit.train.full_load import load_full_checkpoint
from olmo2_lit.train.grad_norm import clip_grads_, global_grad_norm
from olmo2_lit.train.loss import target_tokens
from olmo2_lit.train.parallelize import ParallelizeConfig, dtype_of

#: Registered Lightning strategy names that need CUDA, and the fragment that replaces them on CPU.
CUDA_ONLY_PREFIXES = ("fsdp", "deepspeed")
CPU_ALTERNATIVES = "experiments/strategies/fsdp2.yaml (sharded) or experiments/strategies/ddp.yaml"
DTypeName = Literal["float32", "bfloat16"]


def require_cuda(strategy: str) -> None:
    """Raise a one-line ``ValueError`` naming the CPU-capable fragments if no CUDA GPU is visible."""
    if not torch.cuda.is_available():
        raise ValueError(
            f"trainer.strategy: {strategy} runs only on CUDA GPUs and none is visible here; "
            f"use --config {CPU_ALTERNATIVES} instead"
        )


def check_strategy_name(name: str) -> None:
    """The same check for a strategy given as a registered string (``fsdp``, ``deepspeed_stage_2``...)."""
    if name.startswith(CUDA_ONLY_PREFIXES):
        require_cuda(name)


class BlockWrapPolicy(compat.fsdp_wrap_policy_base()):
    """FSDP (v1) auto-wrap policy: one FSDP unit per entry of every :class:`Transformer`'s ``blocks``.

    Whatever block class the registry built, and whether or not ``parallelize`` wrapped it for
    activation checkpointing (the unit is then the checkpoint wrapper, as torchtitan/OLMo-core order it).
    The root (embeddings, final norm, LM head) is the outer unit.
    """

    def units(self, root_module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        for module in root_module.modules():
            if isinstance(module, Transformer):
                yield from module.blocks


def save_directory_atomically(strategy, save, checkpoint: dict[str, Any], filepath, storage_options) -> None:
    """Run a strategy's collective directory save (``save``) so the checkpoint appears under ``filepath``
    only once every rank has written it (``olmo2_lit.train.checkpoint_publish``): all ranks write into the
    staging directory, then global rank 0 renames it into place. A run killed mid-save keeps its previous
    checkpoint, and no half-written directory carries a checkpoint's name."""
    path = Path(strategy.broadcast(str(filepath)))
    if strategy.global_rank == 0:
        stage(path)
    strategy.barrier("olmo2_save_start")
    save(checkpoint, staging_path(path), storage_options)
    strategy.barrier("olmo2_save_written")
    if strategy.global_rank == 0:
        publish(staging_path(path), path)
    strategy.barrier("olmo2_save_done")


def _load_file(strategy, checkpoint_path, *, broadcast: bool) -> dict[str, Any]:
    """A one-file checkpoint into a sharded strategy's model and optimizers: Lightning's own file path
    pairs Adam's state with the wrong parameters (full_load.py)."""
    path = Path(strategy.broadcast(checkpoint_path))
    module, strict = strategy.model, strategy.lightning_module.strict_loading
    return load_full_checkpoint(path, module, strategy.optimizers, strict=strict, broadcast=broadcast)


class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 (``fully_shard``) over all ranks, through Lightning's ``ModelParallelStrategy``.

    Parameter and reduction dtypes and activation checkpointing live in ``model.parallelize``.

    Args:
        save_distributed_checkpoint: true writes each checkpoint as a torch distributed checkpoint
            directory (each rank its shard; resumable on another world size; ``olmo2-lit convert
            consolidate`` makes one file of it); false gathers one ``.ckpt`` file on rank 0.
        process_group_backend: ``nccl`` / ``gloo``; None picks by device.
        timeout_minutes: collective timeout.
    """

    def __init__(
        self,
        *,
        save_distributed_checkpoint: bool = True,
        process_group_backend: Optional[str] = None,
        timeout_minutes: int = 30,
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timedelta(minutes=timeout_minutes),
        )

    def setup_environment(self) -> None:
        compat.set_data_parallel_size(self, self.num_nodes * self.num_processes)  # pure data parallel
        super().setup_environment()

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath, storage_options=None) -> None:
        if not compat.saves_distributed_checkpoint(self):  # one file from rank 0, through AtomicCheckpointIO
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        save_directory_atomically(self, super().save_checkpoint, checkpoint, filepath, storage_options)

    def load_checkpoint(self, checkpoint_path, weights_only: Optional[bool] = None) -> dict[str, Any]:
        if require_kind(checkpoint_path, accepts=("file", "distributed"), strategy="FSDP2") == "file":
            return _load_file(self, checkpoint_path, broadcast=True)
        return super().load_checkpoint(checkpoint_path, weights_only)


class FSDPStrategy(_FSDPStrategy):
    """Lightning's FSDP (v1), one unit per block, OLMo 2's mixed precision. Needs CUDA.

    Activation checkpointing is ``model.parallelize.activation_checkpointing`` (applied per block
    before wrapping). Gradient clipping by the global norm is done by the module (all ranks agree).

    Args:
        sharding_strategy: FULL_SHARD (ZeRO-3 like), SHARD_GRAD_OP (ZeRO-2 like), NO_SHARD, HYBRID_SHARD.
        state_dict_type: ``sharded`` (a directory per checkpoint) or ``full`` (one file, rank 0).
        param_dtype: dtype parameters are gathered and computed in (OLMo 2: bfloat16).
        reduce_dtype: dtype gradients are reduced in (OLMo 2: float32).
        cpu_offload: keep parameters and gradients on the CPU between uses.
    """

    def __init__(
        self,
        *,
        sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD"] = "FULL_SHARD",
        state_dict_type: Literal["sharded", "full"] = "sharded",
        param_dtype: DTypeName = "bfloat16",
        reduce_dtype: DTypeName = "float32",
        cpu_offload: bool = False,
    ) -> None:
        require_cuda("FSDP (v1), experiments/strategies/fsdp.yaml")
        super().__init__(
            auto_wrap_policy=BlockWrapPolicy(),
            sharding_strategy=sharding_strategy,
            state_dict_type=state_dict_type,
            mixed_precision=MixedPrecision(
                param_dtype=getattr(torch, param_dtype), reduce_dtype=getattr(torch, reduce_dtype)
            ),
            cpu_offload=cpu_offload,
        )

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath, storage_options=None) -> None:
        if compat.fsdp_state_dict_type(self) != "sharded":  # one file from rank 0, through AtomicCheckpointIO
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        save_directory_atomically(self, super().save_checkpoint, checkpoint, filepath, storage_options)

    def load_checkpoint(self, checkpoint_path, weights_only: Optional[bool] = None) -> dict[str, Any]:
        if require_kind(checkpoint_path, accepts=("file", "distributed"), strategy="FSDP (v1)") == "file":
            return _load_file(self, checkpoint_path, broadcast=False)
        return super().load_checkpoint(checkpoint_path, weights_only)


class DeepSpeedStrategy(compat.DeepSpeedMicroBatch, _DeepSpeedStrategy):
    """DeepSpeed ZeRO around the module's own optimizer (our AdamW and param groups). Needs CUDA.

    DeepSpeed clips by the global norm itself, from ``trainer.gradient_clip_val``; the z-loss is part of
    the module's loss and is unaffected.

    Args:
        stage: ZeRO stage: 2 shards optimizer state and gradients, 3 also the parameters.
        offload_optimizer: keep optimizer state in CPU memory.
        offload_parameters: keep parameters in CPU memory (stage 3).
    """

    def __init__(
        self, *, stage: Literal[2, 3] = 2, offload_optimizer: bool = False, offload_parameters: bool = False
    ) -> None:
        require_cuda(f"DeepSpeed ZeRO-{stage}, experiments/strategies/deepspeed_zero{stage}.yaml")
        super().__init__(
            stage=stage, offload_optimizer=offload_optimizer, offload_parameters=offload_parameters
        )

    @contextmanager
    def model_sharded_context(self) -> Iterator[None]:
        """No ``deepspeed.zero.Init`` around ``configure_model``: under ZeRO-3 it partitions each layer's
        parameters as soon as that layer is built, before the model's init scheme runs, which would then
        initialize empty partitions and leave torch's per-layer defaults (N(0, 1) embeddings, Kaiming
        linears). The model is built whole on the CPU, as under every strategy, and ``deepspeed.initialize``
        partitions it (ZeRO-3 converts parameters not created under ``zero.Init``)."""
        yield

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath, storage_options=None) -> None:
        # DeepSpeed writes a directory (each rank its ZeRO partitions, rank 0 `latest`) in place
        save_directory_atomically(self, super().save_checkpoint, checkpoint, filepath, storage_options)

    def load_checkpoint(self, checkpoint_path, weights_only: Optional[bool] = None) -> dict[str, Any]:
        accepts = ("file",) if self.load_full_weights and self.zero_stage_3 else ("deepspeed",)
        require_kind(checkpoint_path, accepts=accepts, strategy="DeepSpeed")
        return super().load_checkpoint(checkpoint_path, weights_only)

    def micro_batch_size(self) -> int:
        """DeepSpeed's ``train_micro_batch_size_per_gpu``: the batch plan's micro batch (Lightning would
        read the dataloader's ``batch_sampler``; ours has none: the dataset yields whole micro-batches)."""
        return self.lightning_module.trainer.datamodule.batch_plan.micro_batch


def describe(strategy) -> dict[str, Any]:
    """The effective settings of a set-up strategy, as plain values for the run's ``strategy.yaml``."""
    out: dict[str, Any] = {
        "class": f"{type(strategy).__module__}.{type(strategy).__qualname__}",
        "world_size": strategy.world_size,
        "num_nodes": getattr(strategy, "num_nodes", 1),
        "cluster_environment": type(strategy.cluster_environment).__name__
        if getattr(strategy, "cluster_environment", None)
        else None,
        "precision": getattr(strategy.precision_plugin, "precision", None),
        "process_group_backend": getattr(strategy, "process_group_backend", None),
    }
    private = compat.strategy_settings(strategy)  # settings Lightning keeps in private attributes
    for key in ("data_parallel_size", "tensor_parallel_size", "save_distributed_checkpoint",
                "sharding_strategy", "state_dict_type", "mixed_precision", "cpu_offload", "ddp_kwargs",
                "kwargs", "config"):  # fmt: skip
        if key in private:
            out[key] = _plain(private[key])
        elif hasattr(strategy, key):
            out[key] = _plain(getattr(strategy, key))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


# --- what differs between strategies inside one optimizer step -------------------------------------------


class StrategyAdapter:
    """Loss scaling, grad norm, clipping and mixed-precision dtypes under one process, DDP and FSDP2.

    ``OLMo2LitModule`` asks the adapter of its strategy (:func:`adapter_for`) and never tests which strategy
    runs; the subclasses below hold every difference.
    """

    name = "DDP / one device"
    #: The gradients live in the parameters' ``.grad`` (dropping them skips the update).
    grads_in_params = True
    #: The fit can be stopped and fitted again from a checkpoint in the same process (Rollback).
    refits_in_process = True

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy

    def loss_scale(self, plan: BatchPlan) -> float:
        """The factor on a micro-batch's summed loss so the gradients are the global batch's mean over its
        target tokens (OLMo-core's normalization), after Lightning divides by the accumulation and the
        strategy averages over ranks."""
        return plan.accumulation * plan.world_size / target_tokens(plan)

    def grad_norm(self, model: torch.nn.Module) -> torch.Tensor:
        """The global L2 norm of the accumulated gradients before clipping, identical on every rank."""
        return global_grad_norm(model.parameters())

    def clip(self, model: torch.nn.Module, max_norm: float, norm: torch.Tensor) -> None:
        """Scale the gradients to a global norm of at most ``max_norm``, given their ``norm``."""
        clip_grads_(model.parameters(), max_norm, norm)

    def base_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """The optimizer the module built (SkipStepAdamW reads its loss and grad norm there)."""
        return optimizer

    def fsdp2_dtypes(self, config: ParallelizeConfig) -> tuple[Optional[torch.dtype], Optional[torch.dtype]]:
        """``(param_dtype, reduce_dtype)`` for FSDP2's mixed precision; a dtype set under another strategy
        cannot apply and is refused, naming the setting that does."""
        for field in ("fsdp_param_dtype", "fsdp_reduce_dtype"):
            if getattr(config, field) is not None:
                raise ConfigError(
                    f"model.parallelize.{field}: {getattr(config, field)} applies only under FSDP2 "
                    f"(--config experiments/strategies/fsdp2.yaml) and this run uses {self.name}; "
                    f"{self.mixed_precision_hint}"
                )
        return None, None

    mixed_precision_hint = "set trainer.precision (e.g. bf16-mixed) instead, or leave it null"


class FSDP2Adapter(StrategyAdapter):
    """FSDP2: gradients are DTensor shards (their norm is reduced by torch), dtypes from model.parallelize."""

    name = "FSDP2"

    def fsdp2_dtypes(self, config: ParallelizeConfig) -> tuple[Optional[torch.dtype], Optional[torch.dtype]]:
        return dtype_of(config.fsdp_param_dtype), dtype_of(config.fsdp_reduce_dtype)


class FSDPv1Adapter(StrategyAdapter):
    """FSDP (v1): each rank's gradients are its flat shard, so the squared norms are summed over ranks;
    mixed precision is the strategy's own ``param_dtype`` / ``reduce_dtype``."""

    name = "FSDP (v1)"
    mixed_precision_hint = "set trainer.strategy.init_args.param_dtype / reduce_dtype (fsdp.yaml) instead"

    def grad_norm(self, model: torch.nn.Module) -> torch.Tensor:
        return global_grad_norm(
            model.parameters(), sum_over_ranks=lambda x: self.strategy.reduce(x, reduce_op="sum")
        )


class DeepSpeedAdapter(StrategyAdapter):
    """DeepSpeed: the engine owns the gradients (ZeRO partitions), divides the loss by the accumulation once
    more, and clips itself (``trainer.gradient_clip_val``); the grad norm is the engine's own, before its
    step."""

    name = "DeepSpeed"
    grads_in_params = False
    refits_in_process = False  # deepspeed.initialize wraps the module once per process
    mixed_precision_hint = "set trainer.precision (e.g. bf16-mixed), which DeepSpeed's config follows"

    def loss_scale(self, plan: BatchPlan) -> float:
        # Lightning divides by the accumulation and DeepSpeedEngine.backward divides again
        # (scale_wrt_gas); undo the second so the gradients and the clipping threshold are OLMo 2's.
        return super().loss_scale(plan) * plan.accumulation

    def grad_norm(self, model: torch.nn.Module) -> torch.Tensor:
        # The same norm the engine computes inside its step (ZeRO-2: scaled_global_norm; ZeRO-3: the norm
        # of its groups' norms), divided by the loss scale (1 in fp32 and bf16), before the step.
        zero = self.strategy.deepspeed_engine.optimizer
        if hasattr(zero, "scaled_global_norm"):
            norm = zero.scaled_global_norm()
        else:
            norm = torch.linalg.vector_norm(torch.stack(compat.deepspeed_zero3_norm_groups(zero)))
        return (torch.as_tensor(norm) / zero.loss_scale).float()

    def clip(self, model: torch.nn.Module, max_norm: float, norm: torch.Tensor) -> None:
        return  # the engine clips by the same global norm inside its step

    def base_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        return getattr(optimizer, "optimizer", optimizer)  # ZeRO wraps the module's optimizer


def adapter_for(strategy: Any) -> StrategyAdapter:
    """The adapter of a Lightning strategy: ours, Lightning's own registered ones, or a subclass of either."""
    if isinstance(strategy, _DeepSpeedStrategy):
        return DeepSpeedAdapter(strategy)
    if isinstance(strategy, _FSDPStrategy):
        return FSDPv1Adapter(strategy)
    if isinstance(strategy, ModelParallelStrategy):
        return FSDP2Adapter(strategy)
    return StrategyAdapter(strategy)
