"""Rolls training back to the last good checkpoint after repeated spikes, past the offending data
(an intervention: reads the SpikeMonitor)."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from olmo2_lit import compat
from olmo2_lit.atomic import atomic_file
from olmo2_lit.callbacks.spike_monitor import SpikeMonitor, find_monitor
from olmo2_lit.train import metrics as M


class Rollback(Callback):
    """After ``spikes`` spikes within ``window`` optimizer steps, reload the newest checkpoint saved before
    the first of them (weights, optimizer state, LR schedule, step counter) and train on.

    The data is *not* rewound: the loop's next batch is the one after the spike, so every batch trained
    on between the checkpoint and the rollback is skipped, and the datamodule's position (which the
    next checkpoint saves) already lies past them. Each rollback is appended to ``record_file`` (JSON,
    written atomically by rank 0): the steps skipped and their global instance ids with shard paths and
    token offsets (``datamodule.instance_location``). The run still reaches ``max_steps``: the steps
    redone count again. Checkpoints saved after the restored one are forgotten, and ModelCheckpoint
    saves again from the restored step on (overwriting its own later files); until its next save, a
    crash resumes from the restored checkpoint and meets the bad data again.

    Args:
        spikes: how many spikes trigger a rollback.
        window: within how many optimizer steps they must fall; the checkpoint interval
            (``checkpoint.every_n_train_steps``) must not be longer, so a good checkpoint exists.
        record_file: where the record goes; relative paths are under ``trainer.default_root_dir``.
        max_rollbacks: stop with an error after this many (the run is not recovering).
    """

    def __init__(
        self,
        *,
        spikes: int = 3,
        window: int = 200,
        record_file: str = "rollbacks.json",
        max_rollbacks: int = 10,
    ) -> None:
        if spikes < 1 or window < spikes:
            raise ValueError(f"Rollback: need 1 <= spikes <= window, got spikes={spikes}, window={window}")
        if max_rollbacks < 1:
            raise ValueError(f"Rollback: max_rollbacks must be >= 1, got {max_rollbacks}")
        self.spikes, self.window, self.record_file, self.max_rollbacks = (
            spikes,
            window,
            record_file,
            max_rollbacks,
        )
        self.spike_steps: deque[int] = deque()  # global steps (as logged) of recent spikes
        self.checkpoints: list[tuple[int, str]] = []  # (global_step saved at, path) of files written
        self.rollbacks = 0
        self._batches: deque[tuple[int, torch.Tensor]] = deque()  # (global step, instance ids) this rank
        self._micro: list[torch.Tensor] = []
        self._monitor: Optional[SpikeMonitor] = None
        self._saving_step: Optional[int] = None
        self._pending = False

    # --- checks -------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._monitor = find_monitor(trainer, "Rollback")
        every = self._checkpoint_interval(trainer)
        self._batches = deque(maxlen=every + self.window + 1)

    def _checkpoint_interval(self, trainer: Trainer) -> int:
        ckpt = trainer.checkpoint_callback
        every = compat.checkpoint_interval(ckpt) if isinstance(ckpt, ModelCheckpoint) else 0
        if not every:
            raise ValueError(
                "Rollback needs periodic checkpoints to roll back to: set checkpoint.every_n_train_steps "
                "(and keep trainer.enable_checkpointing on)"
            )
        if every > self.window:
            raise ValueError(
                f"Rollback: checkpoint.every_n_train_steps ({every}) is longer than Rollback's window "
                f"({self.window}): no checkpoint would be recent enough; lower it or raise the window"
            )
        return every

    # --- bookkeeping --------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path and not any(p == str(trainer.ckpt_path) for _, p in self.checkpoints):
            self.checkpoints.append((trainer.global_step, str(trainer.ckpt_path)))

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        self._saving_step = trainer.global_step

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if "index" in batch:
            self._micro.append(batch["index"].detach())  # kept on the device: no sync per batch

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        self._pending = True

    def _note_checkpoint(self, trainer: Trainer) -> None:
        path = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if path and self._saving_step is not None and all(p != path for _, p in self.checkpoints):
            self.checkpoints.append((self._saving_step, path))

    # --- the intervention ---------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._note_checkpoint(trainer)
        if not self._pending:
            return
        self._pending = False
        decision = self._monitor.observe(trainer, pl_module)
        step = trainer.global_step - 1
        if self._micro:
            self._batches.append((step, torch.cat(self._micro)))
            self._micro = []
        if decision is not None and decision.spike:
            self.spike_steps.append(step)
        while self.spike_steps and self.spike_steps[0] <= step - self.window:
            self.spike_steps.popleft()
        if len(self.spike_steps) >= self.spikes:
            self._roll_back(trainer, pl_module, step)
        pl_module.log(M.ROLLBACKS, float(self.rollbacks), rank_zero_only=True)

    def _roll_back(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        first = self.spike_steps[0]
        # A checkpoint at global step g holds the weights after g steps: good iff g <= the first spike.
        good = [(g, p) for g, p in self.checkpoints if g <= first and Path(p).exists()]
        spikes, self.spike_steps = list(self.spike_steps), deque()
        if not good:
            rank_zero_warn(f"Rollback: spikes at steps {spikes} but no checkpoint at or before step {first}")
            return
        self.rollbacks += 1
        if self.rollbacks > self.max_rollbacks:
            raise RuntimeError(
                f"Rollback: {self.max_rollbacks} rollbacks already and spikes again at steps {spikes}; "
                "the run is not recovering (lower the LR, or raise max_rollbacks)"
            )
        restored_step, path = max(good)
        skipped = self._skipped_instances(trainer, restored_step)
        checkpoint = trainer.strategy.load_checkpoint(path)
        trainer.strategy.load_model_state_dict(checkpoint, strict=True)
        trainer.strategy.load_optimizer_state_dict(checkpoint)
        for config, state in zip(trainer.lr_scheduler_configs, checkpoint["lr_schedulers"]):
            config.scheduler.load_state_dict(state)
        pl_module.on_load_checkpoint(checkpoint)
        # Lightning has no public way to rewind the step counter mid-fit: set the progress it counts.
        progress = trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress.optimizer.step
        progress.total.ready = progress.total.completed = restored_step
        # Checkpoints after the restored one hold spiked weights; let ModelCheckpoint save those steps anew.
        self.checkpoints = [(g, p) for g, p in self.checkpoints if g <= restored_step]
        trainer.checkpoint_callback._last_global_step_saved = restored_step
        self._batches.clear()
        rank_zero_info(
            f"Rollback: spikes at steps {spikes}; restored {path} (step {restored_step}), "
            f"skipping the data of steps {restored_step}..{step}"
        )
        entry = {
            "at_step": step,
            "spike_steps": spikes,
            "checkpoint": path,
            "restored_step": restored_step,
            "skipped": skipped,
        }
        if trainer.is_global_zero:
            self._append_record(trainer, entry)

    def _skipped_instances(self, trainer: Trainer, restored_step: int) -> list[dict[str, Any]]:
        """Steps after the checkpoint with every rank's instance ids and where they live."""
        steps = [(s, ids) for s, ids in self._batches if s >= restored_step]
        if not steps:
            return []
        ids = torch.stack([i for _, i in steps])  # (steps, instances per rank)
        if trainer.world_size > 1:
            ids = trainer.strategy.all_gather(ids).transpose(0, 1).flatten(1)  # (steps, all instances)
        datamodule = trainer.datamodule
        locate = getattr(datamodule, "instance_location", None)
        out = []
        for (s, _), row in zip(steps, ids.tolist()):
            instances = []
            for i in row:
                shard, offset = locate(i) if locate else (None, None)
                instances.append({"index": i, "shard": shard, "offset": offset})
            out.append({"step": s, "instances": instances})
        return out

    def _append_record(self, trainer: Trainer, entry: dict[str, Any]) -> None:
        path = Path(self.record_file)
        if not path.is_absolute():
            path = Path(trainer.default_root_dir) / path
        record = json.loads(path.read_text()) if path.exists() else {"rollbacks": []}
        record["rollbacks"].append(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w") as f:
            json.dump(record, f, indent=1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "spike_steps": list(self.spike_steps),
            "checkpoints": self.checkpoints,
            "rollbacks": self.rollbacks,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.spike_steps = deque(state_dict["spike_steps"])
        self.checkpoints = [tuple(c) for c in state_dict["checkpoints"]]
        self.rollbacks = state_dict["rollbacks"]
