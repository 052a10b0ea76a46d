"""Tokens seen, tokens/s and MFU, logged once per optimizer step and shown in the progress bar; and the
run's start-up time (``torch.compile``, warm-up), logged once."""

from __future__ import annotations

import time
from typing import Optional

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.model import flops_per_token
from olmo2_lit.train import metrics as M
from olmo2_lit.train.peak_flops import peak_flops_per_device
from olmo2_lit.train.startup import StartupTimes
from olmo2_lit.train.step_record import StepRecord


class TokenThroughput(StepCallback):
    """Logs the run's token count and its rate over a sliding window of optimizer steps.

    The count is the step record's ``tokens_seen`` (the data position, the run's one token counter), read
    once per optimizer step. MFU = (FLOPs per
    token from the model config x tokens/s) / (peak FLOP/s x devices), with FLOPs counted as OLMo-core
    does (:func:`olmo2_lit.model.flops_per_token`).

    Start-up: at the end of the fit's second optimizer step it logs ``throughput/first_step_s`` (from
    the start of training to the end of the first step) and ``throughput/startup_s`` (that less the
    second step's time, never below 0: what the first step cost beyond a normal one, ``torch.compile``'s
    compilation with ``model.parallelize.compile: true`` above all; ``train/startup.py``), and prints
    both on rank 0. A resumed fit measures its own start-up.

    Args:
        window: number of optimizer steps the rate is averaged over.
        peak_flops_per_device: override the device's peak FLOP/s (needed for MFU on CPU or an
            unlisted GPU); None looks it up.
    """

    def __init__(self, *, window: int = 10, peak_flops_per_device: Optional[float] = None) -> None:
        if window < 1:
            raise ValueError(f"throughput.window must be >= 1, got {window}")
        self.window = window
        self.peak_override = peak_flops_per_device
        self._history: list[tuple[float, int]] = []
        self._peak: Optional[float] = None
        self._flops_per_token = 0.0
        self._started = 0.0
        self._startup_logged = False

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The device, precision and model are fixed for the run: look them up once, not every step.
        self._peak = self.peak_override or peak_flops_per_device(pl_module.device, str(trainer.precision))
        plan = trainer.datamodule.batch_plan
        self._flops_per_token = flops_per_token(pl_module.config, plan.sequence_length)
        self._history = []
        self._started = time.perf_counter()
        self._startup_logged = False

    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        tokens = record.tokens_seen
        self._history = (self._history + [(time.perf_counter(), tokens)])[-(self.window + 1) :]
        pl_module.log(M.TOKENS_SEEN, float(tokens))
        if len(self._history) < 2:
            return
        if not self._startup_logged:  # this fit's second optimizer step
            self._startup_logged = True
            self._log_startup(trainer)
        (t0, n0), (t1, n1) = self._history[0], self._history[-1]
        rate = (n1 - n0) / max(t1 - t0, 1e-9)
        pl_module.log(M.TOKENS_PER_SEC, rate, prog_bar=True)
        if self._peak:
            pl_module.log(M.MFU, self._flops_per_token * rate / (self._peak * trainer.world_size))

    def _log_startup(self, trainer: Trainer) -> None:
        (t1, _), (t2, _) = self._history[:2]
        times = StartupTimes(started=self._started, first_end=t1, second_end=t2)
        # Straight to the loggers: a value logged once could fall between log_every_n_steps.
        metrics = {M.FIRST_STEP_S: times.first_step_s, M.STARTUP_S: times.startup_s}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        rank_zero_info(times.line())
