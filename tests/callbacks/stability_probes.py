"""Test-only callbacks selected by class_path: inject a spike or a NaN, and record what a step changed."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch import Callback

from olmo2_lit.callbacks.step_callback import StepCallback


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t  # FSDP2: gathered on every rank


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


class ScaleGradsAt(Callback):
    """Multiplies every gradient by ``factor`` at the given optimizer steps (once each), before the module
    measures the grad norm (callback hooks run before the module's): an injected grad-norm spike."""

    def __init__(self, *, steps: list[int], factor: float = 1e3) -> None:
        self.steps, self.factor, self.done = steps, factor, set()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        step = trainer.global_step
        if step in self.steps and step not in self.done:  # once: a rollback revisits step numbers
            self.done.add(step)
            for p in pl_module.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.factor)


class NaNGradAt(Callback):
    """Puts a NaN into the first gradient at the given optimizer step."""

    def __init__(self, *, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step:
            next(p for p in pl_module.parameters() if p.grad is not None).grad.view(-1)[0] = float("nan")


class StepRecorder(Callback):
    """Around optimizer step ``step``: did the weights, the Adam moments and the step counts change?
    List it before any Rollback, which changes the weights after the step. Writes
    ``step_record_rank<r>.json`` under the run's root."""

    def __init__(self, *, step: int) -> None:
        self.step, self.done = step, False
        self._before = None

    def _snapshot(self, pl_module, optimizer):
        # FSDP2: this rank's shards
        params = [_local(p).detach().clone() for p in pl_module.parameters()]
        states = [
            {k: _local(v).detach().clone() for k, v in optimizer.state[p].items()}
            for p in pl_module.parameters()
        ]
        return params, states

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step and not self.done:  # once: a rollback revisits step numbers
            self.done = True
            self._before = self._snapshot(pl_module, optimizer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._before is None:
            return
        (p0, s0), (p1, s1) = self._before, self._snapshot(pl_module, trainer.optimizers[0])
        self._before = None
        record = {
            "weights_unchanged": all(torch.equal(a, b) for a, b in zip(p0, p1)),
            "moments_unchanged": all(
                torch.equal(a[k], b[k]) for a, b in zip(s0, s1) for k in ("exp_avg", "exp_avg_sq") if k in a
            ),
            "steps_unchanged": all(torch.equal(a["step"], b["step"]) for a, b in zip(s0, s1) if "step" in a),
            "had_state": all(len(s) > 0 for s in s0),
        }
        path = Path(trainer.default_root_dir) / f"step_record_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))


class RollbackRecorder(Callback):
    """After each rollback, as the fit restarts (list it after Rollback): do the weights equal those in
    ``checkpoint``, and where are the step counter and the data? Writes ``rollback_record_rank<r>.json``
    under the run's root."""

    def __init__(self, *, checkpoint: str) -> None:
        self.checkpoint, self.seen, self.records = checkpoint, 0, []

    def on_train_start(self, trainer, pl_module) -> None:
        from olmo2_lit.callbacks.rollback import Rollback

        rollback = next(cb for cb in trainer.callbacks if isinstance(cb, Rollback))
        if rollback.rollbacks == self.seen:
            return
        self.seen = rollback.rollbacks
        saved = torch.load(self.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        now = pl_module.state_dict()
        self.records.append(
            {
                "weights_equal_checkpoint": all(
                    torch.equal(_full(now[k]).cpu(), v) for k, v in saved.items()
                ),
                "global_step": trainer.global_step,
                "tokens_seen": trainer.datamodule.tokens_seen,
            }
        )
        path = Path(trainer.default_root_dir) / f"rollback_record_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.records))


class ScaleLossAt(Callback):
    """Multiplies the backpropagated loss by ``factor`` at the given optimizer steps (every micro-batch of
    the step), so the gradients spike but the logged CE (measured before) does not: a grad-norm spike that
    reaches gradients held anywhere (DeepSpeed's partitions included)."""

    def __init__(self, *, steps: list[int], factor: float = 1e3) -> None:
        self.steps, self.factor = steps, factor

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if trainer.global_step in self.steps:
            loss.mul_(self.factor)


class RecordWriter(StepCallback):
    """Writes every step record it gets, in order, to ``step_records_rank<r>.json`` under the run's root."""

    def __init__(self) -> None:
        self.records = []

    def on_step(self, trainer, pl_module, record) -> None:
        row = {k: v for k, v in vars(record).items() if k != "instance_ids"}
        row["instance_ids"] = record.instance_ids.tolist()
        self.records.append(row)
        path = Path(trainer.default_root_dir) / f"step_records_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.records))
