"""The OLMo 2 training recipe as a LightningModule around the plain-torch :class:`Transformer`."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torchmetrics import MeanMetric, SumMetric

from olmo2_lit import compat
from olmo2_lit.callbacks.step_callback import NonFiniteHandler, StepPublisher
from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.errors import CheckpointError, ConfigError, Olmo2LitError
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train import metrics as M
from olmo2_lit.train.checkpoint_state import (
    check_model_config,
    rng_state,
    set_rng_state,
    start_from_checkpoint,
)
from olmo2_lit.train.grad_norm import rescale_grads_
from olmo2_lit.train.loss import StepSums, lm_loss, target_tokens
from olmo2_lit.train.optim import AdamW, ParamGroup, apply_lr_scales, build_param_groups, olmo2_param_groups
from olmo2_lit.train.parallelize import ParallelizeConfig, parallelize
from olmo2_lit.train.schedules import Constant, Schedule, ScheduledLR
from olmo2_lit.train.skip_step import SkipStepAdamW
from olmo2_lit.train.step_record import StepRecord
from olmo2_lit.train.strategies import StrategyAdapter, adapter_for
from olmo2_lit.weights.pretrained import load_pretrained


@dataclass
class _OpenStep:
    """An optimizer step measured before its update, published once the update is done."""

    record: StepRecord
    grad_norm: torch.Tensor  # on the device, for clipping without a host sync
    skipped_nonfinite: bool


class OLMo2LitModule(LightningModule):
    """Trains an OLMo-2-style transformer: CE + z-loss, AdamW groups, LR schedule, clipping, logging.

    Args:
        config: the model (sizes and components; select components by short name, sizes by ``preset``).
        optimizer: any torch optimizer by ``class_path``; default AdamW with OLMo 2's betas/eps/decay.
        param_groups: per-parameter overrides, first match wins; default: no decay on the embedding.
        schedule: LR schedule by ``class_path`` (CosineWithWarmup, LinearDecay, WarmupStableDecay,
            Constant); None means constant LR.
        z_loss_multiplier: weight of the z-loss (1e-5 in OLMo 2); 0 disables it.
        init_from: start from these weights instead of the init: an HF OLMo 2 directory, a native
            weights directory (``olmo2-lit convert from-hf``) or a Lightning ``.ckpt`` of this module.
            The data position is not restored; use ``fit --ckpt_path`` to *resume* a run.
        init_optimizer_state: with a ``.ckpt`` in ``init_from``, also load its optimizer state (Adam
            moments and step count), as OLMo 2's stage 2 does; false starts the optimizer fresh.
        lr_from_checkpoint: with a ``.ckpt`` in ``init_from``, start from the LR that run ended on
            (OLMo 2 stage 2 anneals linearly from there to 0).
        parallelize: activation checkpointing, per-block compile and FSDP2 dtypes
            (``olmo2_lit.train.parallelize``).
    """

    def __init__(
        self,
        *,
        config: ModelConfig = ModelConfig.unresolved(),
        optimizer: OptimizerCallable = AdamW,
        param_groups: Optional[list[ParamGroup]] = None,
        schedule: Optional[Schedule] = None,
        z_loss_multiplier: float = 1e-5,
        init_from: Optional[str] = None,
        init_optimizer_state: bool = True,
        lr_from_checkpoint: bool = False,
        parallelize: ParallelizeConfig = ParallelizeConfig(),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config.resolved()
        self.optimizer_factory = optimizer
        self.param_group_overrides = olmo2_param_groups() if param_groups is None else param_groups
        self.schedule = schedule or Constant()
        self.z_loss_multiplier = z_loss_multiplier
        self.init_from = init_from
        self.init_optimizer_state = init_optimizer_state
        self.lr_from_checkpoint = lr_from_checkpoint
        self.parallelize_config = parallelize
        self.model: Optional[Transformer] = None
        self.batch_plan: Optional[BatchPlan] = None
        self.val_ce = MeanMetric()
        #: The record of the last finished optimizer step (``olmo2_lit.train.step_record``); step callbacks
        #: get each one through ``StepCallback.on_step``.
        self.last_step: Optional[StepRecord] = None
        self._sums = StepSums()
        self._micro_index: list[torch.Tensor] = []
        self._open: Optional[_OpenStep] = None
        self._adapter: Optional[StrategyAdapter] = None
        # Bits per byte (olmo2_lit/eval/bits_per_byte.py): summed CE over summed UTF-8 bytes of the
        # targets; logged when a byte-length table is known (shard sidecars or the BitsPerByte callback).
        self.token_bytes: Optional[torch.Tensor] = None
        self.val_nats, self.val_bytes = SumMetric(), SumMetric()

    # --- model construction -------------------------------------------------------------------
    def configure_model(self) -> None:
        """Build the transformer once (Lightning may call this again under some strategies).

        Always on the CPU, from the seeded CPU generator, whatever context Lightning calls this in, so
        the initial weights are bitwise the same under every strategy and on every device: Lightning
        enters ``torch.device(root_device)`` here under DDP and single-device strategies (the init would
        draw from the CUDA generator on a GPU), nothing under FSDP/FSDP2 (the CPU generator), and
        ``torch.device("meta")`` with ``empty_init=True`` (then its materialization would apply torch's
        per-layer defaults, not OLMo 2's init). The strategy moves or shards the model afterwards.
        """
        if self.model is not None:
            return
        with torch.device("cpu"):  # the innermost device context wins over Lightning's
            if self.init_from:
                self.model = load_pretrained(self.init_from, config=self.config, dtype=torch.float32)
            else:
                self.model = Transformer(self.config)
        dtypes = self.adapter.fsdp2_dtypes(self.parallelize_config)
        parallelize(self.model, self.parallelize_config, mesh=self.device_mesh, fsdp_dtypes=dtypes)

    @property
    def adapter(self) -> StrategyAdapter:
        """What the trainer's strategy changes in a step: loss scale, grad norm, clipping, dtypes."""
        try:
            strategy = self.trainer.strategy
        except RuntimeError:  # not attached to a trainer (a model built by hand): one process
            strategy = None
        if self._adapter is None or self._adapter.strategy is not strategy:
            self._adapter = adapter_for(strategy)
        return self._adapter

    def configure_callbacks(self) -> list:
        """The publisher that hands each finished step's record to the step callbacks."""
        return [StepPublisher()]

    def use_token_bytes(self, table: torch.Tensor) -> None:
        """Log bits per byte on held-out data with this table of UTF-8 byte lengths per token id."""
        self.token_bytes = table

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if self.token_bytes is None and datamodule is not None:
            from olmo2_lit.eval.bits_per_byte import held_out_token_bytes

            self.token_bytes = held_out_token_bytes(datamodule, self.config.vocab_size)
        if stage != "fit":
            return
        if not isinstance(datamodule, TokenShardDataModule):
            raise TypeError("OLMo2LitModule trains from a TokenShardDataModule (the `data:` section)")
        self.batch_plan = datamodule.batch_plan
        if self.trainer.accumulate_grad_batches not in (1, self.batch_plan.accumulation):
            raise ConfigError(
                "trainer.accumulate_grad_batches is derived from the batch plan "
                f"({self.batch_plan.accumulation}); "
                "leave it unset and change data.global_batch_size or data.micro_batch_size instead"
            )
        # One optimizer step consumes exactly one global batch.
        self.trainer.accumulate_grad_batches = self.batch_plan.accumulation

    def forward(self, input_ids: torch.Tensor, doc_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.model(input_ids, doc_lens)

    # --- steps --------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # The output projection fused with the loss: the full logits are never materialized.
        ce_sum, z_sum = self.model(
            batch["input_ids"],
            batch.get("doc_lens"),
            labels=batch["labels"],
            z_loss_multiplier=self.z_loss_multiplier,
        )
        self._sums.add(ce_sum, z_sum, batch["labels"], batch.get("instance_mask"))
        index = batch.get("index")
        self._micro_index.append(index.detach() if index is not None else batch["input_ids"].new_zeros(0))
        # Lightning divides by the accumulation and DDP averages over ranks, so this sums to the
        # global batch's loss over its target-token count (OLMo-core's normalization).
        return (ce_sum + z_sum) * self.adapter.loss_scale(self.batch_plan)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.model(batch["input_ids"], batch.get("doc_lens"))
        ce, _ = lm_loss(logits, batch["labels"], z_loss_multiplier=0)
        labels = batch["labels"]
        n_valid = (labels != -100).sum()
        self.val_ce.update(ce, weight=n_valid)
        if self.token_bytes is not None:
            self.token_bytes = self.token_bytes.to(labels.device)
            self.val_nats.update(ce * n_valid)
            self.val_bytes.update(self.token_bytes[labels[labels != -100]].sum())

    test_step = validation_step

    def on_validation_epoch_end(self) -> None:
        self._log_held_out(M.VAL_CE_LOSS, M.VAL_PERPLEXITY, M.VAL_BPB)

    def on_test_epoch_end(self) -> None:
        self._log_held_out(M.TEST_CE_LOSS, M.TEST_PERPLEXITY, M.TEST_BPB)

    def _log_held_out(self, ce_name: str, perplexity_name: str, bpb_name: str) -> None:
        # MeanMetric syncs across ranks itself, token-weighted.
        ce = self.val_ce.compute()
        self.val_ce.reset()
        self.log(ce_name, ce, prog_bar=True)
        self.log(perplexity_name, torch.exp(ce.clamp(max=50)))
        if self.token_bytes is not None:
            from olmo2_lit.eval.bits_per_byte import bits_per_byte

            self.log(bpb_name, bits_per_byte(self.val_nats.compute(), self.val_bytes.compute()))
            self.val_nats.reset()
            self.val_bytes.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """Greedy next token for every position: (B, T) token ids."""
        return self.model(batch["input_ids"], batch.get("doc_lens")).argmax(-1)

    # --- optimizer ----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        groups = build_param_groups(self.model, self.param_group_overrides)
        try:
            optimizer = self.optimizer_factory(groups)
        except ValueError as err:  # torch's "Invalid learning rate: -1.0", "Invalid beta parameter ..."
            if isinstance(err, Olmo2LitError):
                raise
            raise ConfigError(f"model.optimizer: {err}; fix model.optimizer.init_args") from err
        if self.init_from and self.trainer.ckpt_path is None:
            start_from_checkpoint(
                optimizer,
                self.init_from,
                optimizer_state=self.init_optimizer_state,
                lr=self.lr_from_checkpoint,
            )
        apply_lr_scales(optimizer)
        datamodule = self.trainer.datamodule
        scheduler = ScheduledLR(
            optimizer,
            schedule=self.schedule,
            tokens_per_step=self.batch_plan.tokens_per_step,
            tokens_seen=lambda: datamodule.tokens_seen,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """After accumulation (and AMP unscale), before clipping and the update: measure the step, log it,
        hand a non-finite one to the handlers, and give SkipStepAdamW its loss and grad norm."""
        if len(self._micro_index) < self.batch_plan.accumulation:
            return  # DeepSpeed: Lightning calls this after every micro-batch; the step ends with the last
        ce, z, norm = self._reduce_step()
        record = self._record(optimizer, ce, z, norm)
        self._log_step(ce, z, norm, record.lr)
        skipped = not record.finite and self._hand_over_nonfinite(record)
        base = self.adapter.base_optimizer(optimizer)
        if record.finite and isinstance(base, SkipStepAdamW):
            # Before optimizer.step (Lightning runs this hook inside its closure); a non-finite step
            # never enters the history, where it would make every later std NaN.
            base.latest_loss, base.latest_grad_norm = ce, norm
        self._open = _OpenStep(record=record, grad_norm=norm, skipped_nonfinite=skipped)

    def _reduce_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The global batch's CE and z-loss (one collective) and the global grad norm, on the device."""
        ce, z, divisor, has_mask = self._sums.reduce(self.trainer.strategy)
        if has_mask:
            # The micro-batches were scaled by the divisor with no masked instance; masked ones count
            # T tokens each (OLMo-core), known only now: rescale the gradients to the true divisor.
            rescale_grads_(self.model.parameters(), target_tokens(self.batch_plan) / divisor)
        return ce, z, self.adapter.grad_norm(self.model)

    def _record(self, optimizer, ce: torch.Tensor, z: torch.Tensor, norm: torch.Tensor) -> StepRecord:
        """The step's record, with the step's one host sync (every value but the ids is global, so every
        rank takes the same branches after it)."""
        loss_host, z_host, norm_host = torch.stack([ce, z, norm.to(ce.device)]).tolist()
        ids, self._micro_index = torch.cat(self._micro_index), []  # stays on the device: no sync
        return StepRecord(
            step=self.trainer.global_step,
            tokens_seen=self.trainer.datamodule.tokens_seen,
            loss=loss_host,
            z_loss=z_host,
            grad_norm=norm_host,
            lr=optimizer.param_groups[0]["lr"],
            finite=math.isfinite(loss_host) and math.isfinite(norm_host),
            skipped=False,
            skip_reason=None,
            instance_ids=ids,
        )

    def _log_step(self, ce: torch.Tensor, z: torch.Tensor, norm: torch.Tensor, lr: float) -> None:
        self.log(M.TRAIN_CE_LOSS, ce, prog_bar=True)
        self.log(M.TRAIN_Z_LOSS, z)
        self.log(M.TRAIN_PERPLEXITY, torch.exp(ce.clamp(max=50)))
        self.log(M.GRAD_NORM, norm)
        self.log(M.LEARNING_RATE, lr)

    def _hand_over_nonfinite(self, record: StepRecord) -> bool:
        """Hand a non-finite step to the run's :class:`NonFiniteHandler` callbacks (they skip it or raise);
        without one, raise naming the step and its instances. True: the step was skipped."""
        handlers = [cb for cb in self.trainer.callbacks if isinstance(cb, NonFiniteHandler)]
        for cb in handlers:
            cb.on_nonfinite_step(self.trainer, self, record)
        if handlers:
            return True
        raise FloatingPointError(
            f"non-finite training loss {record.loss} or grad norm {record.grad_norm} at step {record.step} "
            f"(global instance indices {record.instance_ids[:16].tolist()}); add a stability callback to "
            "skip such steps, or lower the LR"
        )

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """Clip by the global norm measured above, so every rank agrees (OLMo 2: 1.0)."""
        if not gradient_clip_val or self._open is None:
            return
        if gradient_clip_algorithm not in (None, "norm"):
            raise ConfigError(
                "only norm clipping is supported, got trainer.gradient_clip_algorithm "
                f"{getattr(gradient_clip_algorithm, 'value', gradient_clip_algorithm)!r}; set it to norm"
            )
        self.adapter.clip(self.model, gradient_clip_val, self._open.grad_norm)

    def finish_step(self) -> Optional[StepRecord]:
        """The record of the optimizer step that just finished, once per step (None mid-accumulation);
        called by :class:`~olmo2_lit.callbacks.step_callback.StepPublisher` after the update."""
        if self._open is None:
            return None
        opened, self._open = self._open, None
        record = opened.record
        if opened.skipped_nonfinite:
            record = replace(record, skipped=True, skip_reason="nonfinite")
        base = self.adapter.base_optimizer(self.trainer.optimizers[0])
        if isinstance(base, SkipStepAdamW):
            self.log(M.STEP_SKIPPED, base.step_skipped)
            if not record.skipped and bool(base.step_skipped):  # a second host sync, with SkipStepAdamW only
                record = replace(record, skipped=True, skip_reason="spike")
        self.last_step = record
        return record

    # --- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["olmo2_lit"] = {
            "model_config": self.config.to_dict(),
            "rng": rng_state(),
            # stage 2 starts from it (OLMo-core get_lr_from_checkpoint)
            "step_lr": self.last_step.lr if self.last_step is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("olmo2_lit")
        trainer = compat.attached_trainer(self)
        path = getattr(trainer, "ckpt_path", None) or "the checkpoint"
        if saved is None:
            raise CheckpointError(f"{path} was not written by OLMo2LitModule (no 'olmo2_lit' entry)")
        check_model_config(saved["model_config"], self.config, path=path)
        fitting = trainer is not None and trainer.state.fn == "fit"
        # a file carries its optimizer state in the dict (a sharded directory: loaded by the strategy)
        if fitting and Path(str(path)).is_file() and "optimizer_states" not in checkpoint:
            raise CheckpointError(
                f"{path} holds weights without optimizer state (e.g. DeepSpeed's zero_to_fp32.py output; "
                "`olmo2-lit convert consolidate` keeps it), so the run cannot resume exactly; restart from "
                "its weights with "
                f"--model.init_from {path} --model.init_optimizer_state false (new optimizer and data order)"
            )
        set_rng_state(saved["rng"])
