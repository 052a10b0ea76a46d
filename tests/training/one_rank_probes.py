"""Test-only callbacks, selected by class_path in every rank of a 2-process run: an event on ONE rank (a
loss spike or a NaN in that rank's micro-batches, a signal to that rank's process), and a per-rank log of
what each rank decided, to compare the ranks afterwards (tests/training/test_one_rank_events.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch
from lightning.pytorch import Callback

from olmo2_lit.callbacks.step_callback import StepCallback


class _OnRank(Callback):
    """Acts at optimizer step ``step`` (0-based, as logged) on global rank ``rank`` only."""

    def __init__(self, *, step: int, rank: int) -> None:
        self.step, self.rank, self.done = step, rank, False
        self._trainer, self._hooked = None, False

    def setup(self, trainer, pl_module, stage) -> None:
        self._trainer = trainer

    def _now(self) -> bool:
        trainer = self._trainer
        return (
            not self.done  # once: a rollback revisits step numbers
            and trainer is not None
            and trainer.global_rank == self.rank
            and trainer.global_step == self.step
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.step:
            self.done = True


class ScaleLossOnRank(_OnRank):
    """Multiplies this rank's summed CE by ``factor`` in every micro-batch of the step (a forward hook on
    the model): that rank's data spikes, in the loss it reports and in the gradient it contributes. A NaN
    ``factor`` makes that rank's loss and gradients NaN."""

    def __init__(self, *, step: int, rank: int, factor: float = 1e3) -> None:
        super().__init__(step=step, rank=rank)
        self.factor = factor

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._hooked:  # once: a rollback starts the fit again on the same model
            self._hooked = pl_module.model.register_forward_hook(self._hook) is not None

    def _hook(self, module, args, output):
        if isinstance(output, tuple) and self._now():  # (ce_sum, z_sum): a training forward
            return (output[0] * self.factor, *output[1:])
        return output


class NaNEmbeddingOnRank(_OnRank):
    """Makes the embedding output NaN on one rank at one step (every micro-batch, and the non-finite
    guard's re-run of them): a NaN born in one rank's forward."""

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._hooked:
            self._hooked = pl_module.model.embeddings.register_forward_hook(self._hook) is not None

    def _hook(self, module, args, output):
        return output * float("nan") if self._now() else output  # stays in the graph (DDP)


class ScaleValLogitsOnRank(_OnRank):
    """Multiplies this rank's validation logits by ``factor`` in the validation run after optimizer step
    ``step`` (``trainer.global_step == step`` while validating): that rank's held-out batches spike, the
    other's do not. Training forwards (which return the summed loss, not logits) are left alone."""

    def __init__(self, *, step: int, rank: int, factor: float = 1e3) -> None:
        super().__init__(step=step, rank=rank)
        self.factor = factor

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._hooked:
            self._hooked = pl_module.model.register_forward_hook(self._hook) is not None

    def _hook(self, module, args, output):
        validating = self._trainer is not None and self._trainer.validating
        if validating and isinstance(output, torch.Tensor) and self._now():
            return output * self.factor
        return output

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pass  # the validation comes after the step's last batch: stays armed until then

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.global_step >= self.step:
            self.done = True


class LaggingCheckpointViewOnRank(Callback):
    """On global rank ``rank`` only, the checkpoint file named ``hidden`` looks absent to Rollback's
    check for files (``Rollback``'s module's ``Path``): a network filesystem whose metadata lags on that
    node. A rank choosing its rollback checkpoint from its own view would restore an older one than the
    other ranks, and the ranks would train on from different weights."""

    def __init__(self, *, rank: int, hidden: str) -> None:
        self.rank, self.hidden = rank, hidden

    def setup(self, trainer, pl_module, stage) -> None:
        if trainer.global_rank != self.rank:
            return
        import olmo2_lit.callbacks.rollback as rollback

        hidden = self.hidden

        class _Lagging(type(Path())):
            def exists(self, *args, **kwargs) -> bool:
                return self.name != hidden and super().exists(*args, **kwargs)

        rollback.Path = _Lagging


class SignalOnRank(Callback):
    """Sends ``signum`` to this process on rank ``rank`` only, after the first micro-batch of the step
    after ``step`` steps (mid-step, gradients half accumulated), as SLURM or a kill of one task would."""

    def __init__(self, *, step: int, rank: int, signum: str = "SIGTERM") -> None:
        self.step, self.rank, self.signum, self.seen = step, rank, signal.Signals[signum], 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            self.seen += 1
            if self.seen == 2:
                os.kill(os.getpid(), self.signum)


class RankLog(StepCallback):
    """Per rank, everything the rank decided at each step, after every other step callback: the record,
    the spike monitor's verdict, the next step's LR, the rollback and skip counts. At the end of each fit
    (or on an exception) also where the rank stopped and its full weights. Writes
    ``rank_log_rank<r>.json`` and ``weights_rank<r>.pt`` under the run's root."""

    role = "stop"

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.ends: list[dict] = []

    def on_step(self, trainer, pl_module, record) -> None:
        from olmo2_lit.callbacks.lr_backoff import LRBackoff
        from olmo2_lit.callbacks.nonfinite_guard import NonFiniteGuard
        from olmo2_lit.callbacks.rollback import Rollback
        from olmo2_lit.callbacks.spike_monitor import SpikeMonitor

        row = {k: v for k, v in vars(record).items() if k != "instance_ids"}
        row["next_lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        for cb in trainer.callbacks:
            if isinstance(cb, SpikeMonitor) and cb.decision is not None:
                row["spike"] = cb.decision.spike
            elif isinstance(cb, Rollback):
                row["rollbacks"] = cb.rollbacks
            elif isinstance(cb, LRBackoff):
                row["lr_backoff_triggers"] = cb.triggers
            elif isinstance(cb, NonFiniteGuard):
                row["nonfinite_skips"] = cb.skips
        row["should_stop"] = trainer.should_stop
        self.rows.append(row)
        self._write(trainer)

    def _end(self, trainer, pl_module, how: str) -> None:
        from lightning.pytorch.callbacks import EarlyStopping

        end = {"how": how, "global_step": trainer.global_step}
        for cb in trainer.callbacks:
            if isinstance(cb, EarlyStopping):  # what this rank saw of the monitored metric
                seen = trainer.callback_metrics.get(cb.monitor)
                end["early_stopping"] = {
                    "monitored": None if seen is None else float(seen),
                    "best_score": float(cb.best_score),
                    "wait_count": cb.wait_count,
                }
        self.ends.append(end)
        self._write(trainer)
        weights = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}
        torch.save(weights, Path(trainer.default_root_dir) / f"weights_rank{trainer.global_rank}.pt")

    def on_train_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "end")

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._end(trainer, pl_module, type(exception).__name__)

    def _write(self, trainer) -> None:
        path = Path(trainer.default_root_dir) / f"rank_log_rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"steps": self.rows, "ends": self.ends}))


def rank_logs(root: Path, ranks: int = 2) -> list[dict]:
    """Each rank's :class:`RankLog`."""
    return [json.loads((root / f"rank_log_rank{r}.json").read_text()) for r in range(ranks)]


def rank_weights(root: Path, ranks: int = 2) -> list[dict[str, torch.Tensor]]:
    """Each rank's weights at its last fit end."""
    return [torch.load(root / f"weights_rank{r}.pt", weights_only=True) for r in range(ranks)]
