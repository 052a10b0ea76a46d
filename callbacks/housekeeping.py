"""Checks and clean-ups around a run that Lightning leaves to us (issue 8, "housekeeping").

* a fit whose every learning rate is 0 (``lr: 0``, or a schedule at 0 over the whole fit) is warned
  about before the first step, naming the LR (:mod:`olmo2_lit.train.zero_lr`);
* ``validate``/``test``/``predict`` without ``--ckpt_path`` or ``model.init_from`` say loudly that they
  score a randomly initialized model;
* at the start of ``fit``, temp files an interrupted checkpoint save left in the checkpoint directory
  are removed (only our own temp names, :func:`olmo2_lit.atomic.remove_stale_temps`), and so are the
  leftovers in the checkpoint staging directories (:func:`olmo2_lit.train.checkpoint_publish.remove_stale`);
* a run that fails before its first optimizer step removes the log directory it created (its
  ``config.yaml``, ``hparams.yaml``, ``strategy.yaml`` and event files, written by this run, and nothing
  else).
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from olmo2_lit.atomic import remove_stale_temps
from olmo2_lit.train.checkpoint_publish import remove_stale
from olmo2_lit.train.schedules import ScheduledLR
from olmo2_lit.train.zero_lr import zero_lr_message

#: Files a run writes into its log directory before the first step (Lightning CLI and TensorBoard).
_RUN_FILES = re.compile(r"^(config\.yaml|hparams\.yaml|strategy\.yaml|events\.out\.tfevents\..+)$")


class Housekeeping(Callback):
    """Warn about an LR of 0 and about evaluating random weights; clean up after interrupted saves and
    runs that fail before their first step.

    Args:
        remove_stale_temps: remove temp files of interrupted checkpoint saves when ``fit`` starts.
        remove_empty_log_dir: remove this run's log directory if it fails before its first step.
    """

    def __init__(self, *, remove_stale_temps: bool = True, remove_empty_log_dir: bool = True) -> None:
        self.remove_stale_temps = remove_stale_temps
        self.remove_empty_log_dir = remove_empty_log_dir
        self._started = time.time()

    def _warn_if_untrained(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # after the checkpoint is restored (trainer.ckpt_path is only known then)
        verb = str(getattr(trainer.state.fn, "value", trainer.state.fn))
        if verb == "fit" or trainer.ckpt_path is not None or getattr(pl_module, "init_from", None):
            return
        message = (
            f"{verb} without --ckpt_path or model.init_from: this scores a RANDOMLY INITIALIZED model; "
            "pass --ckpt_path <run>/last.ckpt (or model.init_from) to evaluate trained weights"
        )
        if trainer.is_global_zero:
            print(f"\nWARNING: {message}\n", file=sys.stderr, flush=True)
        rank_zero_warn(message)

    on_validation_start = on_test_start = on_predict_start = _warn_if_untrained

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        ckpt = trainer.checkpoint_callback
        if not (self.remove_stale_temps and trainer.is_global_zero):
            return
        if ckpt is not None and ckpt.dirpath:
            for path in remove_stale_temps(ckpt.dirpath):
                rank_zero_info(f"removed {path}, left by an interrupted checkpoint save")
        # the staging directories of checkpoint saves (regular ones and SLURM's hpc_ckpt_*)
        for directory in {ckpt.dirpath if ckpt is not None else None, trainer.default_root_dir} - {None}:
            for path in remove_stale(directory):
                rank_zero_info(f"removed {path}, left by an interrupted checkpoint save")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        total = trainer.estimated_stepping_batches  # max_steps, or the epochs' steps
        steps = 1 if math.isinf(total) else int(total) - trainer.global_step
        from_checkpoint = getattr(pl_module, "lr_from_checkpoint", False) and getattr(
            pl_module, "init_from", None
        )
        peak_from = (
            "the LR model.init_from's checkpoint ended on, with lr_from_checkpoint"
            if from_checkpoint
            else "model.optimizer.init_args.lr"
        )
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, ScheduledLR):
                message = zero_lr_message(config.scheduler, steps=steps, peak_from=peak_from)
                if message:
                    rank_zero_warn(message)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not (self.remove_empty_log_dir and trainer.is_global_zero and trainer.global_step == 0):
            return
        logger = trainer.logger
        log_dir = Path(logger.log_dir) if logger is not None and logger.log_dir else None
        if log_dir is None or not log_dir.is_dir():
            return
        entries = list(log_dir.iterdir())
        ours = [
            p
            for p in entries
            if p.is_file() and _RUN_FILES.match(p.name) and p.stat().st_mtime >= self._started - 1
        ]
        if len(ours) != len(entries):
            return  # something else is there: keep all of it
        for path in ours:
            path.unlink()
        log_dir.rmdir()
        rank_zero_info(f"removed the empty log directory {log_dir} (the run failed before its first step)")
