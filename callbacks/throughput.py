"""Tokens seen, tokens/s and MFU, logged once per optimizer step and shown in the progress bar."""

from __future__ import annotations

import time
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer

from olmo2_lit.model import flops_per_token
from olmo2_lit.train import metrics as M
from olmo2_lit.train.peak_flops import peak_flops_per_device


class TokenThroughput(Callback):
    """Logs the run's token count and its rate over a sliding window of optimizer steps.

    The count is the datamodule's ``tokens_seen`` (the data position, the run's one token counter) and
    the step boundaries come from the batch plan (``trainer.datamodule.batch_plan``). MFU = (FLOPs per
    token from the model config x tokens/s) / (peak FLOP/s x devices), with FLOPs counted as OLMo-core
    does (:func:`olmo2_lit.model.flops_per_token`).

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

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The device, precision and model are fixed for the run: look them up once, not every step.
        self._peak = self.peak_override or peak_flops_per_device(pl_module.device, str(trainer.precision))
        plan = trainer.datamodule.batch_plan
        self._flops_per_token = flops_per_token(pl_module.config, plan.sequence_length)
        self._history = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: dict, batch_idx: int
    ) -> None:
        if not trainer.datamodule.batch_plan.ends_step(batch_idx):
            return  # still accumulating: no optimizer step yet
        tokens = trainer.datamodule.tokens_seen
        self._history = (self._history + [(time.perf_counter(), tokens)])[-(self.window + 1) :]
        pl_module.log(M.TOKENS_SEEN, float(tokens))
        if len(self._history) < 2:
            return
        (t0, n0), (t1, n1) = self._history[0], self._history[-1]
        rate = (n1 - n0) / max(t1 - t0, 1e-9)
        pl_module.log(M.TOKENS_PER_SEC, rate, prog_bar=True)
        if self._peak:
            pl_module.log(M.MFU, self._flops_per_token * rate / (self._peak * trainer.world_size))
