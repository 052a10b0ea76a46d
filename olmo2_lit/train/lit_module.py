"""The OLMo 2 training recipe as a LightningModule around the plain-torch :class:`Transformer`."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torchmetrics import MeanMetric, SumMetric

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train import metrics as M
from olmo2_lit.train.checkpoint_state import check_model_config, checkpoint_lr, rng_state, set_rng_state
from olmo2_lit.train.grad_norm import clip_grads_, global_grad_norm
from olmo2_lit.train.loss import lm_loss
from olmo2_lit.train.optim import AdamW, ParamGroup, apply_lr_scales, build_param_groups, olmo2_param_groups
from olmo2_lit.train.schedules import Constant, Schedule, ScheduledLR


class OLMo2LitModule(LightningModule):
    """Trains an OLMo-2-style transformer: CE + z-loss, AdamW groups, LR schedule, clipping, logging.

    Args:
        config: the model (sizes and components; select components by short name).
        optimizer: any torch optimizer by ``class_path``; default AdamW with OLMo 2's betas/eps/decay.
        param_groups: per-parameter overrides, first match wins; default: no decay on the embedding.
        schedule: LR schedule by ``class_path`` (CosineWithWarmup, LinearDecay, WarmupStableDecay,
            Constant); None means constant LR.
        z_loss_multiplier: weight of the z-loss (1e-5 in OLMo 2); 0 disables it.
        init_from: start from these weights instead of the init: an HF OLMo 2 directory, a native
            weights directory (``olmo2-lit convert from-hf``) or a Lightning ``.ckpt`` of this module.
            Only the weights are loaded; use ``fit --ckpt_path`` to *resume* a run.
        lr_from_checkpoint: with a ``.ckpt`` in ``init_from``, start from the LR that run ended on
            (OLMo 2 stage 2 anneals linearly from there to 0).
        activation_checkpointing: recompute each block's activations in the backward pass.
        compile: ``torch.compile`` each block (OLMo-core compiles per block).
    """

    def __init__(
        self,
        *,
        config: ModelConfig = ModelConfig(),
        optimizer: OptimizerCallable = AdamW,
        param_groups: Optional[list[ParamGroup]] = None,
        schedule: Optional[Schedule] = None,
        z_loss_multiplier: float = 1e-5,
        init_from: Optional[str] = None,
        lr_from_checkpoint: bool = False,
        activation_checkpointing: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        self.optimizer_factory = optimizer
        self.param_group_overrides = olmo2_param_groups() if param_groups is None else param_groups
        self.schedule = schedule or Constant()
        self.z_loss_multiplier = z_loss_multiplier
        self.init_from = init_from
        self.lr_from_checkpoint = lr_from_checkpoint
        self.activation_checkpointing = activation_checkpointing
        self.compile_blocks = compile
        self.model: Optional[Transformer] = None
        self.val_ce = MeanMetric()
        # Bits per byte (olmo2_lit/eval/bits_per_byte.py): summed CE over summed UTF-8 bytes of the
        # targets; logged when a byte-length table is known (shard sidecars or the BitsPerByte callback).
        self.token_bytes: Optional[torch.Tensor] = None
        self.val_nats, self.val_bytes = SumMetric(), SumMetric()
        self._grad_norm: Optional[torch.Tensor] = None
        self._checkpoint_lr: Optional[float] = None
        self._micro_losses: list[tuple[torch.Tensor, Optional[torch.Tensor]]] = []

    # --- model construction -------------------------------------------------------------------
    def configure_model(self) -> None:
        """Build the transformer once (Lightning may call this again under some strategies)."""
        if self.model is not None:
            return
        if self.init_from:
            from olmo2_lit.weights.pretrained import load_pretrained

            self.model = load_pretrained(self.init_from, config=self.config, dtype=torch.float32)
            if self.lr_from_checkpoint:
                self._checkpoint_lr = checkpoint_lr(self.init_from)
        else:
            self.model = Transformer(self.config)
        for block in self.model.blocks:
            if self.activation_checkpointing:
                block.forward = _checkpointed(block.forward)
            if self.compile_blocks:
                block.compile()
        mesh = self.device_mesh
        if mesh is not None:  # ModelParallelStrategy: FSDP2, one unit per block
            from olmo2_lit.train.sharding import shard_fsdp2

            shard_fsdp2(self.model, mesh)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "micro_batches_per_step"):
            # One optimizer step consumes exactly one global batch of the datamodule.
            self.trainer.accumulate_grad_batches = datamodule.micro_batches_per_step(self.trainer.world_size)
        if self.token_bytes is None and datamodule is not None:
            from olmo2_lit.eval.bits_per_byte import held_out_token_bytes

            self.token_bytes = held_out_token_bytes(datamodule, self.config.vocab_size)

    def forward(self, input_ids: torch.Tensor, doc_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.model(input_ids, doc_lens)

    # --- steps --------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["input_ids"], batch.get("doc_lens"))  # (B, T, V)
        ce, z = lm_loss(logits, batch["labels"], z_loss_multiplier=self.z_loss_multiplier)
        loss = ce + z
        # Checked once per optimizer step (one host sync), not per micro-batch.
        self._micro_losses.append((loss.detach(), batch.get("index")))
        self.log(M.TRAIN_CE_LOSS, ce, prog_bar=True)
        self.log(M.TRAIN_Z_LOSS, z)
        self.log(M.TRAIN_PERPLEXITY, torch.exp(ce.detach().clamp(max=50)))
        return loss

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

    def _stop_on_nonfinite(self) -> None:
        """Raise, on every rank together, if any micro-batch of this step had a non-finite loss."""
        micro, self._micro_losses = self._micro_losses, []
        if not micro:
            return
        local_bad = bool((~torch.isfinite(torch.stack([loss for loss, _ in micro]))).any())
        bad = self.trainer.strategy.reduce_boolean_decision(local_bad, all=False)
        if not bad or any(getattr(cb, "handles_nonfinite_loss", False) for cb in self.trainer.callbacks):
            return
        loss, index = next(((lo, i) for lo, i in micro if not torch.isfinite(lo)), micro[0])
        where = f" (global instance indices {index.tolist()[:16]})" if index is not None and local_bad else ""
        raise FloatingPointError(
            f"non-finite training loss {loss.item()} at step {self.trainer.global_step}{where}; "
            "add a stability callback to skip such steps, or lower the LR"
        )

    # --- optimizer ----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        groups = build_param_groups(self.model, self.param_group_overrides)
        optimizer = self.optimizer_factory(groups)
        if self.lr_from_checkpoint:
            if self._checkpoint_lr is None:
                raise ValueError(
                    "lr_from_checkpoint needs init_from to name a Lightning .ckpt of this module"
                )
            for group in optimizer.param_groups:
                group["lr"] = self._checkpoint_lr
        apply_lr_scales(optimizer)
        datamodule = getattr(self.trainer, "datamodule", None)
        tokens_per_step = getattr(datamodule, "global_batch_tokens", 0)
        if self.schedule.units == "tokens" and not tokens_per_step:
            raise ValueError("a schedule in tokens needs a datamodule with global_batch_tokens")
        scheduler = ScheduledLR(optimizer, schedule=self.schedule, tokens_per_step=tokens_per_step)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._stop_on_nonfinite()
        # After accumulation and AMP unscale, before clipping: log the raw global norm.
        self._grad_norm = global_grad_norm(self.model.parameters())
        self.log(M.GRAD_NORM, self._grad_norm)
        self.log(M.LEARNING_RATE, optimizer.param_groups[0]["lr"])

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """Clip by the global norm computed above, so DDP and FSDP2 ranks agree (OLMo 2: 1.0)."""
        if not gradient_clip_val:
            return
        if gradient_clip_algorithm not in (None, "norm"):
            raise ValueError(f"only norm clipping is supported, got {gradient_clip_algorithm!r}")
        norm = self._grad_norm if self._grad_norm is not None else global_grad_norm(self.model.parameters())
        clip_grads_(self.model.parameters(), gradient_clip_val, norm)

    # --- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["olmo2_lit"] = {"model_config": self.config.to_dict(), "rng": rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("olmo2_lit")
        if saved is None:
            raise ValueError("checkpoint was not written by OLMo2LitModule (no 'olmo2_lit' entry)")
        check_model_config(saved["model_config"], self.config)
        set_rng_state(saved["rng"])


def _checkpointed(forward):
    def run(*args):
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False)

    return run
