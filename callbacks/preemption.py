"""Stop on SIGTERM, SIGUSR1 or SIGINT at the end of the current optimizer step, with a checkpoint.

Lightning's own SIGTERM handling (``trainer/connectors/signal_connector.py``, 2.6) stops after the
current *micro-batch*, saves nothing and exits with status 0, so a pre-empted job looks finished and
loses the work since the last periodic checkpoint. This callback keeps Lightning's exit path
(``SIGTERMException``, raised by the loop once ``received_sigterm`` is set) but:

1. records the signal and lets the optimizer step finish (all micro-batches of the step);
2. at the step's end saves ``<checkpoint dir>/last.ckpt`` through the trainer (so through
   ``AtomicCheckpointIO``), prints where and the exact command that resumes;
3. then sets ``received_sigterm``, so Lightning stops after logging the step, and gives the exit the
   status ``128 + signal number`` (SIGTERM: 143, SIGUSR1: 138, SIGINT: 130).

A second SIGINT aborts at once (Lightning's KeyboardInterrupt path, no checkpoint). Under SLURM with
``auto_requeue``, SIGUSR1 is left to Lightning, which saves an ``hpc_ckpt`` and requeues the job.
Several ranks agree on the step to stop at, and on the signal (the highest number any rank got: its exit
status and message), with one all-reduce per optimizer step (none on one device); a signal that reaches one
rank only stops every rank at the same step (``tests/training/test_one_rank_events.py``).
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from olmo2_lit import compat
from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.train.step_record import StepRecord

HANDLED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def resume_command(ckpt_path: str) -> str:
    """The command line of this run with ``--ckpt_path`` replaced by ``ckpt_path``."""
    from olmo2_lit import cli

    argv = list(cli.INVOCATION if cli.INVOCATION is not None else sys.argv[1:])
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            skip = True
        elif not arg.startswith("--ckpt_path="):
            kept.append(arg)
    return shlex.join(["olmo2-lit", *kept, "--ckpt_path", ckpt_path])


class Preemption(StepCallback):
    """Finish the optimizer step, save a checkpoint, and exit non-zero on SIGTERM/SIGUSR1/SIGINT.

    Its ``role`` is ``stop``: the checkpoint is saved after every other step callback has seen the step.

    Args:
        enabled: install the signal handlers during ``fit``; False leaves Lightning's own handling
            (stop after the micro-batch, no checkpoint, status 0).
    """

    role = "stop"

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.signum: Optional[int] = None
        self.saved_path: Optional[str] = None
        self._previous: dict[int, Any] = {}
        self._trainer: Optional[Trainer] = None

    # --- handlers -------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning registers its handlers just before the loop starts; ours replace them for the run
        # and Lightning's teardown puts back what was there before it.
        if not self.enabled:
            return
        self._trainer, self.signum, self.saved_path = trainer, None, None
        env = compat.cluster_environment(trainer)
        slurm_requeue = isinstance(env, SLURMEnvironment) and env.auto_requeue
        for signum in HANDLED:
            if signum == signal.SIGUSR1 and slurm_requeue:
                continue  # Lightning's requeue handler owns it (scale-out docs)
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: nothing to install
                return

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # second Ctrl+C: abort now
        first = self.signum is None
        self.signum = self.signum or signum
        trainer = self._trainer
        if first and trainer is not None and trainer.is_global_zero:
            print(
                f"\n{signal.Signals(signum).name}: finishing optimizer step {trainer.global_step + 1}, then "
                "saving a checkpoint and exiting"
                + (" (Ctrl+C again aborts without saving)" if signum == signal.SIGINT else ""),
                file=sys.stderr,
                flush=True,
            )
        launcher = trainer.strategy.launcher if trainer is not None else None
        if first and launcher is not None and signum != signal.SIGINT:
            launcher.kill(signum)  # as Lightning does: pass it on to the processes it started

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._previous = {}

    # --- the stop --------------------------------------------------------------------------------
    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        if not self.enabled or self.saved_path is not None:
            return
        own = self.signum
        signum = own or 0
        if trainer.world_size > 1:  # every rank stops, with the same signal, if any rank got one
            signum = int(
                trainer.strategy.reduce(torch.tensor(signum, device=pl_module.device), reduce_op="max")
            )
        if not signum:
            return
        self.signum = signum
        path = str(
            _checkpoint_dir(trainer)
            / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
        )
        started = time.perf_counter()
        trainer.save_checkpoint(path)
        self.saved_path = path
        if trainer.is_global_zero:
            name = signal.Signals(signum).name + ("" if own == signum else " on another rank")
            print(
                f"{name}: saved step {trainer.global_step} to {path} "
                f"({time.perf_counter() - started:.1f} s); "
                f"exiting with status {self.exit_status}.\nresume with:\n  {resume_command(path)}",
                file=sys.stderr,
                flush=True,
            )
        compat.stop_after_this_step(trainer)  # Lightning stops once the step is logged

    @property
    def exit_status(self) -> int:
        """``128 + signal number``, as a shell reports a process killed by that signal."""
        return 128 + int(self.signum or signal.SIGTERM)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()
        if self.saved_path is not None and isinstance(exception, SIGTERMException):
            exception.code = self.exit_status  # Lightning re-raises this very exception

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()


def _checkpoint_dir(trainer: Trainer) -> Path:
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        return Path(callback.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"
