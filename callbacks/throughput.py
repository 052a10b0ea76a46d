"""Tokens seen, tokens/s and MFU, logged every step and shown in the progress bar."""

from __future__ import annotations

import time
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer

from olmo2_lit.model import flops_per_token
from olmo2_lit.train import metrics as M
from olmo2_lit.train.peak_flops import peak_flops_per_device


class TokenThroughput(Callback):
    """Counts training tokens across all ranks and logs throughput over a sliding window.

    MFU = (FLOPs per token from the model config x tokens/s) / (peak FLOP/s x devices), with FLOPs
    counted as OLMo-core does (:func:`olmo2_lit.model.flops_per_token`).

    Args:
        window: number of optimizer steps the rate is averaged over.
        peak_flops_per_device: override the device's peak FLOP/s (needed for MFU on CPU or an
            unlisted GPU); None looks it up.
    """

    def __init__(self, *, window: int = 10, peak_flops_per_device: Optional[float] = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.peak_override = peak_flops_per_device
        self.tokens_seen = 0
        self._pending = 0
        self._history: list[tuple[float, int]] = []
        self._peak: Optional[float] = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The device and precision are fixed for the run: look the peak up once, not every step.
        self._peak = self.peak_override or peak_flops_per_device(pl_module.device, str(trainer.precision))

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: dict, batch_idx: int
    ) -> None:
        self._pending += batch["input_ids"].numel() * trainer.world_size
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # still accumulating: no optimizer step yet
        self.tokens_seen += self._pending
        self._pending = 0
        self._history = (self._history + [(time.perf_counter(), self.tokens_seen)])[-(self.window + 1) :]
        pl_module.log(M.TOKENS_SEEN, float(self.tokens_seen))
        if len(self._history) < 2:
            return
        (t0, n0), (t1, n1) = self._history[0], self._history[-1]
        rate = (n1 - n0) / max(t1 - t0, 1e-9)
        pl_module.log(M.TOKENS_PER_SEC, rate, prog_bar=True)
        peak = self._peak
        if peak:
            seq_len = batch["input_ids"].shape[1]
            flops = flops_per_token(pl_module.config, seq_len) * rate
            pl_module.log(M.MFU, flops / (peak * trainer.world_size))

    def state_dict(self) -> dict[str, Any]:
        return {"tokens_seen": self.tokens_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tokens_seen = int(state_dict["tokens_seen"])
