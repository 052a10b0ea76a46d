"""SLURM preemption: save and requeue at a step boundary when SLURM signals the job (``--signal=SIGUSR1@90``).

Lightning's ``SLURMEnvironment`` (auto-requeue on) saves ``<default_root_dir>/hpc_ckpt_<n>.ckpt`` and runs
``scontrol requeue $SLURM_JOB_ID`` from inside the signal handler, i.e. wherever the signal lands: between
two micro-batches of a step, the accumulated gradients are not in the checkpoint and the resumed run
differs. This callback keeps Lightning's mechanism (same checkpoint name, same requeue command, same
automatic resume of the newest ``hpc_ckpt_*`` when the requeued job starts with the same
``default_root_dir``) but defers it: the handler only records the signal; after the next completed
optimizer step, every rank agrees (one all-reduce), Lightning's own requeue routine saves and requeues,
and training stops. The requeued job then continues with no step lost or repeated.

Inert unless the run is under ``SLURMEnvironment`` with ``auto_requeue`` (the default when SLURM is
detected). SIGTERM keeps Lightning's handling; single-machine signal handling is another callback's job.
"""

from __future__ import annotations

import signal

from lightning.fabric.plugins.environments import SLURMEnvironment

from olmo2_lit import compat
from olmo2_lit.callbacks.step_callback import StepCallback


class SLURMRequeue(StepCallback):
    """Defers Lightning's SLURM save-and-requeue on the requeue signal to the next step boundary (its
    ``role`` is ``stop``: it saves after every other step callback has seen the step)."""

    role = "stop"

    def __init__(self) -> None:
        self._signalled = False
        self._signum = None
        self._active = False

    def on_train_start(self, trainer, pl_module) -> None:
        env = compat.cluster_environment(trainer)
        self._active = isinstance(env, SLURMEnvironment) and env.auto_requeue
        if not self._active:
            return
        # Lightning registered its immediate handler just before training; record the signal instead.
        self._signum = env.requeue_signal or signal.SIGUSR1
        signal.signal(self._signum, self._record)

    def _record(self, signum, frame) -> None:
        self._signalled = True

    def on_step(self, trainer, pl_module, record) -> None:
        if not self._active:
            return
        if not trainer.strategy.reduce_boolean_decision(self._signalled, all=False):
            return
        # Lightning's own routine: finalize loggers, save hpc_ckpt_<n>.ckpt, rank 0 runs scontrol requeue.
        compat.slurm_save_and_requeue(trainer, self._signum)
        trainer.should_stop = True
