"""Per-layer stability diagnostics in TensorBoard every ``interval`` optimizer steps."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.train.layer_stats import adam_update, layer_groups, max_attention_logit, total_norm
from olmo2_lit.train.step_record import StepRecord

PREFIX = "diag"


class Diagnostics(StepCallback):
    """Every ``interval`` optimizer steps, logs per layer (embeddings, each block, final norm, LM head):

    - ``diag/grad_norm/<layer>``: gradient norm after accumulation, before clipping;
    - ``diag/param_norm/<layer>``: parameter norm before the update;
    - ``diag/update_ratio/<layer>``: norm of the Adam step ``lr * m_hat / (sqrt(v_hat) + eps)`` (decay
      left out) over the parameter norm, from the optimizer's moments after the update;
    - ``diag/act_rms/<block>`` and ``diag/act_max/<block>``: RMS and max |x| of each block's output;
    - ``diag/attn_logit_max/<block>``: largest causal pre-softmax attention logit (for QK-norm studies).

    Activations and logits come from the step's first micro-batch on rank 0 (the logits from its first
    sequence). Values are written straight to the loggers at the step, whatever ``log_every_n_steps``;
    the cost is one host sync per logged step and nothing on the other steps. Not under DeepSpeed (refused at
    setup): its engine keeps the gradients and Adam's moments in its own partitions.

    Args:
        interval: log every this many optimizer steps (1: every step).
        attention_logits: compute the max attention logit (one (T, T) matrix per head).
    """

    def __init__(self, *, interval: int = 100, attention_logits: bool = True) -> None:
        if interval < 1:
            raise ValueError(f"Diagnostics: interval must be >= 1, got {interval}")
        self.interval, self.attention_logits = interval, attention_logits
        self._in_step = False
        self._values: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._lrs: list[float] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and not pl_module.adapter.grads_in_params:
            raise ValueError(
                "Diagnostics does not run under DeepSpeed: its engine keeps the gradients and Adam's moments "
                "in its own partitions, where the per-layer norms cannot be read; remove diagnostics.yaml"
            )

    def _logging(self, trainer: Trainer) -> bool:
        return trainer.global_step % self.interval == 0

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        first = not self._in_step
        self._in_step = True
        if first and self._logging(trainer):
            self._values = {}
            self._hook_activations(pl_module.model)

    def _hook_activations(self, model) -> None:
        groups = list(layer_groups(model))[1:-2]  # block names

        def on_block(name):
            def hook(module, args, output):
                x = output.detach().float()
                self._values[f"{PREFIX}/act_rms/{name}"] = x.pow(2).mean().sqrt()
                self._values[f"{PREFIX}/act_max/{name}"] = x.abs().max()

            return hook

        def on_attention(name):
            def hook(module, args):
                self._values[f"{PREFIX}/attn_logit_max/{name}"] = max_attention_logit(args[0], args[1])

            return hook

        for name, block in zip(groups, model.blocks):
            self._handles.append(block.register_forward_hook(on_block(name)))
            if self.attention_logits:
                self._handles.append(block.attention.backend.register_forward_pre_hook(on_attention(name)))

    def _unhook(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        self._unhook()  # the first micro-batch's forward is done (no hooks during recomputation)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        self._in_step = False
        if not self._logging(trainer):
            return
        for name, params in layer_groups(pl_module.model).items():
            self._values[f"{PREFIX}/grad_norm/{name}"] = total_norm(p.grad for p in params)
            self._values[f"{PREFIX}/param_norm/{name}"] = total_norm(params)
        self._lrs = [g["lr"] for g in optimizer.param_groups]

    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        if not self._values:
            return  # not a logged step
        optimizer = trainer.optimizers[0]
        group_of = {id(p): (g, lr) for g, lr in zip(optimizer.param_groups, self._lrs) for p in g["params"]}
        for name, params in layer_groups(pl_module.model).items():
            updates = []
            for p in params:
                group, lr = group_of.get(id(p), (None, None))
                if group is not None and "betas" in group:
                    updates.append(
                        adam_update(
                            p, optimizer.state.get(p, {}), lr=lr, betas=group["betas"], eps=group["eps"]
                        )
                    )
            if any(u is not None for u in updates):
                ratio = total_norm(updates) / total_norm(params).clamp_min(1e-12)
                self._values[f"{PREFIX}/update_ratio/{name}"] = ratio
        values, self._values = self._values, {}
        step = record.step
        if trainer.is_global_zero:
            stacked = torch.stack([v.detach().float().to(pl_module.device) for v in values.values()])
            host = dict(zip(values, stacked.tolist()))  # one host sync
            for logger in trainer.loggers:
                logger.log_metrics(host, step=step)
