"""The one door to the private parts of Lightning and torch.

Everything in ``olmo2_lit/`` and ``callbacks/`` that reaches a name starting with ``_`` in another
library (an attribute, a method we override, a private module) goes through an entry here; the rest of
the code calls these entries by their public names (``tests/test_structure.py`` walks the source and
fails on any other). Each entry says what it reaches, why we need it, and when it can go.
``tests/test_compat.py`` has one test per entry that exercises the real Lightning or torch object, so an
upgrade that moves one of them fails one test naming what moved. docs/training.md ("Lightning and torch
internals we rely on") lists the entries.

Only torch is imported at module level (the plain-torch model uses :func:`tensor_version`); the
Lightning entries reach their objects through the arguments they are given and import nothing, and the
heavier torch modules (FSDP v1's wrap policies, distributed checkpoint) are imported on first use.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import torch
from torch.distributed.algorithms._checkpoint import checkpoint_wrapper as _checkpoint_wrapper

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary
    from lightning.pytorch.utilities.model_summary import ModelSummary as Summary


# --- torch ----------------------------------------------------------------------------------------


def tensor_version(tensor: torch.Tensor) -> int:
    """``Tensor._version``: autograd's in-place modification counter.

    FlexAttention's block mask is cached per ``doc_lens`` tensor; the counter tells an unchanged tensor
    from one written in place since. torch has no public equivalent. Remove if the cache keys on the
    values instead (a host sync per forward) or torch makes the counter public.
    """
    return tensor._version


class foreach:  # noqa: N801 - a namespace of torch functions, read as ``compat.foreach.mul_``
    """``torch._foreach_*``: torch's multi-tensor kernels (one launch for a list of tensors).

    The skip-step AdamW and the gradient rescale use them, as torch's own optimizers do. They are private
    in name only (pytorch/pytorch#58833). Remove when torch ships the public ``torch.foreach`` namespace
    (pytorch/pytorch#193607): then alias these to it.
    """

    mul = staticmethod(torch._foreach_mul)
    mul_ = staticmethod(torch._foreach_mul_)
    add_ = staticmethod(torch._foreach_add_)
    div = staticmethod(torch._foreach_div)
    div_ = staticmethod(torch._foreach_div_)
    sqrt = staticmethod(torch._foreach_sqrt)


CheckpointWrapper = _checkpoint_wrapper.CheckpointWrapper
"""``torch.distributed.algorithms._checkpoint.checkpoint_wrapper.CheckpointWrapper``: the activation
checkpoint wrapper FSDP (v1 and 2), torchtitan and OLMo-core wrap blocks in. Private module, the documented
way (FSDP tutorials). Remove when torch gives it a public path."""

CheckpointImpl = _checkpoint_wrapper.CheckpointImpl
"""``...checkpoint_wrapper.CheckpointImpl``: the reentrant / non-reentrant choice of
:data:`CheckpointWrapper`. Same module, same removal condition."""

CHECKPOINT_PREFIX: str = _checkpoint_wrapper._CHECKPOINT_PREFIX
"""``...checkpoint_wrapper._CHECKPOINT_PREFIX``: the ``_checkpoint_wrapped_module.`` infix that
:data:`CheckpointWrapper` puts in parameter names (its state dict strips it; ``named_parameters`` does
not). Parameter names are matched to checkpoint keys without it. Same module, same removal condition."""


@functools.cache
def fsdp_wrap_policy_base() -> type:
    """A base class for FSDP (v1) auto-wrap policies: ``torch.distributed.fsdp.wrap._Policy`` with its
    private ``_run_policy`` implemented by calling the subclass's public ``units(root)``.

    ``_Policy`` is what FSDP accepts as ``auto_wrap_policy``. The public policies choose by module class
    (``ModuleWrapPolicy``) or one module at a time (``CustomPolicy``), and neither can say "each entry of
    ``Transformer.blocks``, whatever block class, and the checkpoint wrapper rather than the block inside
    it". Imported on first use (``torch.distributed.fsdp.wrap`` takes a second to import). Remove when
    FSDP v1 goes (FSDP2 wraps by hand in ``parallelize.py``) or torch makes ``_Policy`` public.
    """
    from torch.distributed.fsdp.wrap import _Policy

    class UnitsPolicy(_Policy):
        """A policy that wraps each module ``units(root)`` yields, with FSDP's root kwargs."""

        def units(self, root_module: torch.nn.Module) -> Iterable[torch.nn.Module]:
            raise NotImplementedError

        def _run_policy(self, root_module, ignored_modules, root_kwargs) -> dict:
            return {m: copy.copy(root_kwargs) for m in self.units(root_module) if m not in ignored_modules}

    return UnitsPolicy


def read_distributed_checkpoint(path: Union[str, Path]) -> dict[str, Any]:
    """Every entry of a torch distributed checkpoint directory, tensors full and on the CPU, read by one
    process with no process group: ``torch.distributed.checkpoint.state_dict_loader._load_state_dict``
    with ``default_planner._EmptyStateDictLoadPlanner`` (the pair torch's own ``dcp_to_torch_save``
    uses).

    ``olmo2-lit convert consolidate`` needs the dict; ``dcp_to_torch_save`` would only write it to another
    file first. Remove when torch makes an empty-state-dict load public.
    """
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    state: dict[str, Any] = {}
    _load_state_dict(
        state, storage_reader=FileSystemReader(path), planner=_EmptyStateDictLoadPlanner(), no_dist=True
    )
    return state


# --- Lightning: the trainer ---------------------------------------------------------------------------


def cluster_environment(trainer: Trainer):
    """``trainer._accelerator_connector.cluster_environment``: the environment Lightning detected
    (``SLURMEnvironment``, ``LightningEnvironment``...), whatever the strategy.

    The preemption and SLURM callbacks ask whether SLURM's auto-requeue owns the requeue signal.
    ``trainer.strategy.cluster_environment`` is public but absent on single-device strategies, which
    Lightning still runs under SLURM. Remove when the trainer exposes the environment.
    """
    return trainer._accelerator_connector.cluster_environment


def stop_after_this_step(trainer: Trainer) -> None:
    """Set ``trainer._signal_connector.received_sigterm``: Lightning's loop stops once the current step
    is logged, through its SIGTERM path (``SIGTERMException``, which ``on_exception`` sees).

    ``trainer.should_stop`` stops too, but as a normal end of fit, so a pre-empted run would look finished
    (exit status 0, ``on_train_end``). Remove when Lightning has a public "stop as if signalled".
    """
    connector = trainer._signal_connector
    if not hasattr(connector, "received_sigterm"):  # setting it anyway would silently do nothing
        raise AttributeError("Lightning's signal connector has no received_sigterm flag any more")
    connector.received_sigterm = True


def slurm_save_and_requeue(trainer: Trainer, signum: int) -> None:
    """``trainer._signal_connector._slurm_sigusr_handler_fn``: Lightning's own SLURM routine (finalize
    loggers, save ``hpc_ckpt_<n>.ckpt`` on every rank, rank 0 runs ``scontrol requeue``).

    Lightning runs it inside the signal handler, mid-step; :class:`~olmo2_lit.callbacks.slurm.SLURMRequeue`
    runs it at the next step boundary instead, keeping Lightning's checkpoint name and resume. Remove when
    Lightning defers it itself (Lightning-AI/pytorch-lightning#21406, PR #21407).
    """
    trainer._signal_connector._slurm_sigusr_handler_fn(signum, None)


def checkpoint_interval(model_checkpoint: ModelCheckpoint) -> int:
    """``ModelCheckpoint._every_n_train_steps``: how many optimizer steps apart it saves, 0 if it does
    not save by steps.

    Rollback needs a checkpoint within its window to roll back to. ``ModelCheckpoint`` keeps the value
    only privately. Remove when it exposes ``every_n_train_steps``.
    """
    return int(model_checkpoint._every_n_train_steps or 0)


def save_checkpoint_now(callback: ModelCheckpoint, trainer: Trainer) -> None:
    """``ModelCheckpoint``'s own save path (``_should_skip_saving_checkpoint``, ``_monitor_candidates``,
    ``_save_topk_checkpoint``, ``_save_last_checkpoint``): save this step as a periodic checkpoint and as
    ``last.ckpt``, unless this step is saved already.

    ``StepCheckpoint`` saves the step a fit ends on, whatever the interval (OLMo-core's ``post_train``
    save). Remove when ``ModelCheckpoint`` saves the final step itself or has a public save.
    """
    if callback._should_skip_saving_checkpoint(trainer):  # saved on the interval (or not fitting)
        return
    candidates = callback._monitor_candidates(trainer)
    callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)


def deepspeed_zero3_norm_groups(zero: Any) -> list[torch.Tensor]:
    """``DeepSpeedZeroOptimizer_Stage3._get_norm_groups()``: the per-group gradient norms ZeRO-3's ``step``
    computes before clipping.

    The step record needs the grad norm before the update (SkipStepAdamW and the spike monitor judge it);
    ZeRO-2 has the public ``scaled_global_norm()``, ZeRO-3 only this. Remove when ZeRO-3 exposes one.
    """
    return zero._get_norm_groups()


def attached_trainer(module: LightningModule) -> Optional[Trainer]:
    """``LightningModule._trainer``: the trainer the module is attached to, or None.

    ``module.trainer`` raises when there is none (a module loading a checkpoint outside a run). Remove
    when Lightning has a public "is attached" check.
    """
    return module._trainer


# --- Lightning: the model summary ---------------------------------------------------------------------


def model_summary(callback: ModelSummary, trainer: Trainer, pl_module: LightningModule) -> Summary:
    """``ModelSummary._summary``: the callback's summary of ``pl_module`` (DeepSpeed's under ZeRO-3, so
    sharded parameters are counted whole), at the callback's ``max_depth``.

    Our summary prints the same table without the FLOPs column. Remove when the callback exposes it.
    """
    return callback._summary(trainer, pl_module)


def summary_columns(summary: Summary) -> list[tuple[str, list[str]]]:
    """``ModelSummary._get_summary_data``: the summary's table as ``(column name, cells)`` pairs, the data
    Lightning's own callback prints. Remove when Lightning exposes the table."""
    return summary._get_summary_data()


# --- Lightning: the CLI ---------------------------------------------------------------------------------


class CLIHooks:
    """Public hooks in place of two private ``LightningCLI`` methods; mix in before it:
    ``class OLMo2CLI(compat.CLIHooks, LightningCLI)``.

    * ``_instantiate_trainer(config, callbacks)`` calls :meth:`trainer_callbacks` to extend the callbacks
      Lightning builds the trainer with (``instantiate_trainer`` is public but computes those callbacks
      through more private methods).
    * ``_parse_ckpt_path()`` calls :meth:`check_ckpt_path` *instead of* Lightning's, which replaces the
      parsed config with a file checkpoint's ``hyper_parameters`` (Lightning-AI/pytorch-lightning#20310,
      #20801). Remove this half when the pinned Lightning has PR #21455 (the config wins).
    """

    def trainer_callbacks(self, config: dict, callbacks: list) -> list:
        """The callbacks the trainer is built with, given its config and Lightning's extra callbacks."""
        return callbacks

    def check_ckpt_path(self) -> None:
        """Runs where Lightning would read ``ckpt_path``'s hyper-parameters into the config."""

    def _instantiate_trainer(self, config: dict, callbacks: list):
        return super()._instantiate_trainer(config, self.trainer_callbacks(config, callbacks))

    def _parse_ckpt_path(self) -> None:
        self.check_ckpt_path()


# --- Lightning: strategies ------------------------------------------------------------------------------


def set_data_parallel_size(strategy, size: int) -> None:
    """Set ``ModelParallelStrategy._data_parallel_size`` before its ``setup_environment`` builds the
    device mesh.

    Lightning's ``"auto"`` means the number of *nodes* (tensor parallel inside a node); pure FSDP2 over
    all ranks needs the world size, which is known only once the environment is. Remove when the strategy
    accepts a data-parallel size resolved at setup.
    """
    if not hasattr(strategy, "_data_parallel_size"):  # setting it anyway would silently do nothing
        raise AttributeError("ModelParallelStrategy has no _data_parallel_size any more")
    strategy._data_parallel_size = size


def saves_distributed_checkpoint(strategy) -> bool:
    """``ModelParallelStrategy._save_distributed_checkpoint``: whether it writes a directory of shards
    (rather than one file from rank 0). Our save makes the directory atomic. Remove when it is public."""
    return bool(strategy._save_distributed_checkpoint)


def fsdp_state_dict_type(strategy) -> str:
    """``FSDPStrategy._state_dict_type``: ``"sharded"`` (a directory) or ``"full"`` (one file). Our save
    makes the directory atomic. Remove when it is public."""
    return strategy._state_dict_type


#: Constructor settings Lightning keeps only in private attributes: run-record key -> attribute.
_STRATEGY_SETTINGS = {
    "data_parallel_size": "_data_parallel_size",  # ModelParallelStrategy
    "tensor_parallel_size": "_tensor_parallel_size",  # ModelParallelStrategy
    "save_distributed_checkpoint": "_save_distributed_checkpoint",  # ModelParallelStrategy
    "state_dict_type": "_state_dict_type",  # FSDPStrategy
    "ddp_kwargs": "_ddp_kwargs",  # DDPStrategy (and FSDP v1)
}


def strategy_settings(strategy) -> dict[str, Any]:
    """The constructor settings Lightning keeps only in private attributes (``_data_parallel_size``,
    ``_state_dict_type``, ``_ddp_kwargs``...) that this strategy has, by their public names.

    The run's ``strategy.yaml`` records the settings a run used (Lightning's saved ``config.yaml`` drops
    some). Remove an attribute here when Lightning makes it public.
    """
    return {
        key: getattr(strategy, attr) for key, attr in _STRATEGY_SETTINGS.items() if hasattr(strategy, attr)
    }


class DeepSpeedMicroBatch:
    """``DeepSpeedStrategy._auto_select_batch_size`` answered by the public :meth:`micro_batch_size`; mix
    in before it: ``class DeepSpeedStrategy(compat.DeepSpeedMicroBatch, lightning's DeepSpeedStrategy)``.

    Lightning reads DeepSpeed's ``train_micro_batch_size_per_gpu`` from the train dataloader's
    ``batch_sampler``; ours has none (the dataset yields whole micro-batches), so Lightning would say 1.
    Remove when Lightning lets the module or the config give the micro batch.
    """

    def micro_batch_size(self) -> int:
        """Samples per micro-batch on one rank."""
        raise NotImplementedError

    def _auto_select_batch_size(self) -> int:
        return self.micro_batch_size()


def numpy_pickle_globals() -> list:
    """numpy's private array-unpickling function ``_reconstruct`` under both module paths numpy has used
    (``numpy.core.multiarray`` before 2.0, ``numpy._core.multiarray`` since), for
    ``torch.serialization.safe_globals``: the OLMo trainer's ``train.pt`` pickles numpy arrays (its RNG
    state), and ``torch.load(weights_only=True)`` refuses them without it. Remove when numpy arrays
    load ``weights_only`` by default.
    """
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
    ]
