"""Detects loss and grad-norm spikes once per optimizer step and logs the spike scores (detection only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from olmo2_lit.train import metrics as M
from olmo2_lit.train.spikes import OLMoCoreSpikeDetector, PaperSpikeScore


@dataclass(frozen=True)
class SpikeDecision:
    """What the monitor concluded about one optimizer step."""

    step: int
    """The optimizer step, numbered from 0 as it is logged (``trainer.global_step`` before it)."""
    spike: bool
    """Either signal spiked (OLMo-core's rule)."""
    loss_spike: bool
    grad_norm_spike: bool
    loss: float
    grad_norm: float


class SpikeMonitor(Callback):
    """Judges every optimizer step's CE loss and pre-clip global grad norm (the module's ``step_loss`` and
    ``step_grad_norm``, identical on every rank) and logs the spike rates (OLMO2.md §3.1).

    OLMo-core's rule flags a value above mean + ``sigma`` x std (population) of the previous ``window``;
    the step is a spike if either signal is. The paper's score is the share of values at least
    ``paper_sigma`` standard deviations above the mean of the previous ``paper_window``, per signal.

    Interventions call :meth:`observe` for the decision: the step is judged once, by whichever asks
    first, so callback order does not matter. Costs one host sync (two scalars) per optimizer step.
    Non-finite values are left to the non-finite guard: they are not judged and stay out of the history.

    Args:
        window: previous values of OLMo-core's rule (128).
        sigma: its threshold in standard deviations (6).
        warmup: previous values needed before judging (None: ``window``).
        rate_window: steps of the recent spike rate (OLMo-core: 10,000).
        paper_window: previous values of the paper's score (1,000).
        paper_sigma: its threshold in standard deviations (7).
    """

    def __init__(
        self,
        *,
        window: int = 128,
        sigma: float = 6.0,
        warmup: Optional[int] = None,
        rate_window: int = 10_000,
        paper_window: int = 1000,
        paper_sigma: float = 7.0,
    ) -> None:
        for name, value in (("sigma", sigma), ("paper_sigma", paper_sigma)):
            if value <= 0:
                raise ValueError(f"SpikeMonitor: {name} must be > 0, got {value}")
        if warmup is not None and window < warmup:
            raise ValueError(f"SpikeMonitor: window ({window}) must be >= warmup ({warmup}): it never fills")
        self.detector = OLMoCoreSpikeDetector(
            window=window, sigma=sigma, warmup=warmup, rate_window=rate_window
        )
        self.paper_loss = PaperSpikeScore(window=paper_window, sigma=paper_sigma)
        self.paper_grad_norm = PaperSpikeScore(window=paper_window, sigma=paper_sigma)
        self.decision: Optional[SpikeDecision] = None
        self._pending = False

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        self._pending = True  # once per optimizer step, whatever the accumulation

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.observe(trainer, pl_module)

    def observe(self, trainer: Trainer, pl_module: LightningModule) -> Optional[SpikeDecision]:
        """The decision for the optimizer step just taken (judged and logged on the first call after it);
        None before the first step. Call it from ``on_train_batch_end``."""
        if not self._pending:
            return self.decision
        self._pending = False
        loss, norm = (float(v) for v in _two_scalars(pl_module.step_loss, pl_module.step_grad_norm))
        finite = math.isfinite(loss) and math.isfinite(norm)
        spike = self.detector.update(loss, norm) if finite else False
        loss_spike, norm_spike = self.detector.last if finite else (False, False)
        if finite:
            self.paper_loss.update(loss)
            self.paper_grad_norm.update(norm)
        self.decision = SpikeDecision(
            step=trainer.global_step - 1,
            spike=spike,
            loss_spike=loss_spike,
            grad_norm_spike=norm_spike,
            loss=loss,
            grad_norm=norm,
        )
        self._log(pl_module)
        return self.decision

    def _log(self, pl_module: LightningModule) -> None:
        d = self.decision
        values = {
            M.SPIKE: float(d.spike),
            M.SPIKE_LOSS: float(d.loss_spike),
            M.SPIKE_GRAD_NORM: float(d.grad_norm_spike),
            M.SPIKE_RATE_RECENT: self.detector.rate.recent_rate,
            M.SPIKE_RATE_TOTAL: self.detector.total_rate,
            M.SPIKE_PAPER_SCORE_LOSS: self.paper_loss.score,
            M.SPIKE_PAPER_SCORE_GRAD_NORM: self.paper_grad_norm.score,
        }
        for name, value in values.items():
            if value is not None:  # rates appear once their window is full, as in OLMo-core
                pl_module.log(name, value, rank_zero_only=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector.state_dict(),
            "paper_loss": self.paper_loss.state_dict(),
            "paper_grad_norm": self.paper_grad_norm.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.detector.load_state_dict(state_dict["detector"])
        self.paper_loss.load_state_dict(state_dict["paper_loss"])
        self.paper_grad_norm.load_state_dict(state_dict["paper_grad_norm"])


def find_monitor(trainer: Trainer, user: str) -> SpikeMonitor:
    """The run's one :class:`SpikeMonitor`, for an intervention named ``user``; a clear error otherwise."""
    monitors = [cb for cb in trainer.callbacks if isinstance(cb, SpikeMonitor)]
    if len(monitors) != 1:
        raise ValueError(
            f"{user} reads the decision of a SpikeMonitor and found {len(monitors)} in trainer.callbacks: "
            "add exactly one, e.g. --config experiments/stability/spike_monitor.yaml"
        )
    return monitors[0]


def _two_scalars(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Both values in one device-to-host copy."""
    return torch.stack([a.detach().float().reshape(()), b.detach().float().reshape(()).to(a.device)]).tolist()
