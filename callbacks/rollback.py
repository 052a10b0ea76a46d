"""Rolls training back to the last good checkpoint after repeated spikes, past the offending data
(an intervention: reads the SpikeMonitor)."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from olmo2_lit import compat
from olmo2_lit.atomic import atomic_file
from olmo2_lit.callbacks.spike_monitor import SpikeMonitor, find_monitor
from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.train import metrics as M
from olmo2_lit.train.step_record import StepRecord


@dataclass(frozen=True)
class _Restart:
    """Where the stopped run resumes and how far its data moves on afterwards."""

    checkpoint: str
    tokens_seen: int  # the data position at the rollback: the restarted run skips to it


class Rollback(StepCallback):
    """After ``spikes`` spikes within ``window`` optimizer steps, stop, resume from the newest checkpoint
    saved before the first of them, and train on past the data seen since.

    The resume is the ordinary one (``fit --ckpt_path``'s path, in the same process): weights, optimizer
    state, LR schedule, step counter, RNG and every callback's state come from the checkpoint; then the data
    position jumps to where it was at the rollback (``datamodule.skip_tokens``), so every batch trained on
    between the checkpoint and the rollback is skipped. This callback keeps its own count and record across
    the restart. Each rollback is appended to ``record_file`` (JSON, written atomically by rank 0): the steps
    skipped and their global instance ids with shard paths and token offsets
    (``datamodule.instance_location``). The run still reaches ``max_steps``: the steps redone count again.
    The step that triggers the rollback is not saved; checkpoints saved after the restored one (spiked
    weights) are overwritten as the run passes their steps again, and until then a crash resumes from them.

    Not under DeepSpeed (refused at setup): the restart would wrap the model in a second DeepSpeed engine.

    Args:
        spikes: how many spikes trigger a rollback.
        window: within how many optimizer steps they must fall; the checkpoint interval
            (``checkpoint.every_n_train_steps``) must not be longer, so a good checkpoint exists.
        record_file: where the record goes; relative paths are under ``trainer.default_root_dir``.
        max_rollbacks: stop with an error after this many (the run is not recovering).
    """

    role = "intervention"

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
        self._monitor: Optional[SpikeMonitor] = None
        self._saving_step: Optional[int] = None
        self._restart: Optional[_Restart] = None

    # --- checks -------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._monitor = find_monitor(trainer, "Rollback")
        if stage == "fit" and not pl_module.adapter.refits_in_process:
            raise ValueError(
                "Rollback does not run under DeepSpeed: it resumes the fit from a checkpoint in the same "
                "process, which would wrap the model in a second DeepSpeed engine; use LRBackoff or "
                "SkipStepAdamW"
            )
        every = self._checkpoint_interval(trainer)
        self._batches = deque(self._batches, maxlen=every + self.window + 1)

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
        if self._restart is not None:  # the fit restarted from the good checkpoint: skip the bad data
            restart, self._restart = self._restart, None
            trainer.datamodule.skip_tokens(restart.tokens_seen - trainer.datamodule.tokens_seen)
        if trainer.ckpt_path and not any(p == str(trainer.ckpt_path) for _, p in self.checkpoints):
            self.checkpoints.append((trainer.global_step, str(trainer.ckpt_path)))

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        self._saving_step = trainer.global_step

    def _note_checkpoint(self, trainer: Trainer) -> None:
        path = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if path and self._saving_step is not None and all(p != path for _, p in self.checkpoints):
            self.checkpoints.append((self._saving_step, path))

    def restart_from(self) -> Optional[str]:
        return self._restart.checkpoint if self._restart is not None else None

    # --- the intervention ---------------------------------------------------------------------
    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        self._note_checkpoint(trainer)
        step = record.step
        self._batches.append((step, record.instance_ids))
        if self._monitor.decision.spike:
            self.spike_steps.append(step)
        while self.spike_steps and self.spike_steps[0] <= step - self.window:
            self.spike_steps.popleft()
        if len(self.spike_steps) >= self.spikes:
            self._roll_back(trainer, step)
        pl_module.log(M.ROLLBACKS, float(self.rollbacks), rank_zero_only=True)

    def _roll_back(self, trainer: Trainer, step: int) -> None:
        first = self.spike_steps[0]
        # A checkpoint at global step g holds the weights after g steps: good iff g <= the first spike.
        # Rank 0 looks at the files and every rank takes its list: a rank whose view of the directory
        # lags (a network filesystem's cached metadata) would otherwise restore another checkpoint.
        good = None
        if trainer.is_global_zero:
            good = [(g, p) for g, p in self.checkpoints if g <= first and Path(p).exists()]
        if trainer.world_size > 1:
            good = trainer.strategy.broadcast(good, src=0)
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
        # Checkpoints after the restored one hold spiked weights: no longer candidates.
        self.checkpoints = [(g, p) for g, p in self.checkpoints if g <= restored_step]
        self._batches.clear()
        self._restart = _Restart(checkpoint=path, tokens_seen=trainer.datamodule.tokens_seen)
        trainer.should_stop = True  # the CLI resumes from the checkpoint once this fit has stopped
        rank_zero_info(
            f"Rollback: spikes at steps {spikes}; resuming from {path} (step {restored_step}), "
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
        locate = trainer.datamodule.instance_location
        out = []
        for (s, _), row in zip(steps, ids.tolist()):
            instances = []
            for i in row:
                shard, offset = locate(i)
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
        if self._restart is not None:
            return  # resuming from the good checkpoint: this run's own count and record carry on
        self.spike_steps = deque(state_dict["spike_steps"])
        self.checkpoints = [tuple(c) for c in state_dict["checkpoints"]]
        self.rollbacks = state_dict["rollbacks"]
