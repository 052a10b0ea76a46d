"""Skips or stops on a step with a non-finite loss or gradient, and says where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from olmo2_lit.atomic import atomic_file
from olmo2_lit.callbacks.step_callback import NonFiniteHandler, StepCallback
from olmo2_lit.train import metrics as M
from olmo2_lit.train.nonfinite import nonfinite_activations, nonfinite_grads
from olmo2_lit.train.step_record import StepRecord


class NonFiniteGuard(NonFiniteHandler, StepCallback):
    """On an optimizer step whose global loss or grad norm is NaN or inf, skips the step or stops the run.

    A skipped step has its gradients dropped on every rank, so AdamW (and SkipStepAdamW) leave the
    weights, moments and step count as they were; the LR schedule moves on. On stop (or after
    ``max_skips`` skips), rank 0 writes ``nonfinite_step<N>.json`` under ``trainer.default_root_dir``
    with the step, every rank's instance ids with their shard paths and offsets, the losses, the first
    parameters with non-finite gradients, and the first modules whose outputs were non-finite when the
    step's micro-batches are run again, then raises ``FloatingPointError`` naming the file.

    The check itself is OLMo2LitModule's (one host sync per step, on the global loss and grad norm it
    computes anyway); this callback only acts, through ``on_nonfinite_step``. Costs nothing on finite steps.
    Under DeepSpeed, whose engine holds the gradients, ``skip`` is refused at setup (``stop`` works).

    Args:
        action: ``stop`` (default) or ``skip``.
        max_skips: with ``skip``, stop once this many steps were skipped in the run.
    """

    role = "intervention"

    def __init__(self, *, action: Literal["skip", "stop"] = "stop", max_skips: int = 100) -> None:
        if action not in ("skip", "stop"):
            raise ValueError(f"NonFiniteGuard: action must be 'skip' or 'stop', got {action!r}")
        if max_skips < 1:
            raise ValueError(f"NonFiniteGuard: max_skips must be >= 1, got {max_skips}")
        self.action, self.max_skips = action, max_skips
        self.skips = 0
        self._losses: list[torch.Tensor] = []
        self._batches: list[dict] = []
        self._step_done = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.action == "skip" and stage == "fit" and not pl_module.adapter.grads_in_params:
            raise ValueError(
                "NonFiniteGuard(action='skip') cannot run under DeepSpeed: its engine holds the gradients, "
                "so dropping them does not skip the update; use nonfinite.action: stop"
            )

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._step_done:  # a new optimizer step begins
            self._losses, self._batches, self._step_done = [], [], False
        self._batches.append(batch)  # references for the report, dropped at the next step

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        self._losses.append(loss.detach())

    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        self._step_done = True
        if self.action == "skip":
            pl_module.log(M.NONFINITE_SKIPPED, float(self.skips), rank_zero_only=True)  # running count

    def on_nonfinite_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        """Called by OLMo2LitModule, on every rank, when the step's global loss or grad norm is not finite
        (after accumulation, before clipping and the update)."""
        model = pl_module.model
        if self.action == "skip" and self.skips < self.max_skips:
            self.skips += 1
            for p in model.parameters():
                p.grad = None
            rank_zero_warn(f"NonFiniteGuard: non-finite loss or gradient at step {record.step}; step skipped")
            return
        report = self._report(trainer, model, record, self._losses, self._batches)
        for p in model.parameters():
            p.grad = None
        raise FloatingPointError(
            f"non-finite loss or gradient at step {record.step}; see {report} for the batch's instances and "
            "the first layers that went non-finite (NonFiniteGuard(action='skip') skips such steps)"
        )

    def _report(self, trainer, model, record: StepRecord, losses, batches) -> Path:
        grads, n_grads = nonfinite_grads(model)
        activations = []
        for batch in batches:  # every micro-batch on every rank: FSDP2's forward is collective
            found = nonfinite_activations(model, batch["input_ids"], batch.get("doc_lens"))
            activations = activations or found
        locate = trainer.datamodule.instance_location
        per_micro = len(record.instance_ids) // max(len(losses), 1)
        instances = []
        for n, i in enumerate(record.instance_ids.tolist()):
            shard, offset = locate(i)
            loss = float(losses[n // per_micro]) if n // per_micro < len(losses) else None
            instances.append({"index": i, "shard": shard, "offset": offset, "backward_loss": loss})
        # backward_loss: the micro-batch's loss as backpropagated (divided by the accumulation)
        mine = {
            "rank": trainer.global_rank,
            "backward_losses": [float(x) for x in losses],
            "instances": instances,
            "nonfinite_grads": grads,
            "n_nonfinite_grads": n_grads,
            "nonfinite_activations": activations,
        }
        ranks = [mine]
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            ranks = [None] * trainer.world_size
            dist.all_gather_object(ranks, mine)
        path = Path(trainer.default_root_dir) / f"nonfinite_step{record.step:07d}.json"
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, "w") as f:
                json.dump({"step": record.step, "ranks": ranks}, f, indent=1)
        return path

    def state_dict(self) -> dict[str, Any]:
        return {"skips": self.skips}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skips = state_dict["skips"]
