"""Detects loss and grad-norm spikes once per optimizer step and logs the spike scores (detection only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from lightning.pytorch import LightningModule, Trainer

from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.train import metrics as M
from olmo2_lit.train.spikes import OLMoCoreSpikeDetector, PaperSpikeScore
from olmo2_lit.train.step_record import StepRecord


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


class SpikeMonitor(StepCallback):
    """Judges every optimizer step's CE loss and pre-clip global grad norm (the step record's ``loss`` and
    ``grad_norm``, identical on every rank) and logs the spike rates (OLMO2.md §3.1).

    OLMo-core's rule flags a value above mean + ``sigma`` x std (population) of the previous ``window``;
    the step is a spike if either signal is. The paper's score is the share of values at least
    ``paper_sigma`` standard deviations above the mean of the previous ``paper_window``, per signal.

    An observer: it runs before every intervention, which reads its :attr:`decision` for the step.
    Non-finite values are left to the non-finite guard: they are not judged and stay out of the history.

    Args:
        window: previous values of OLMo-core's rule (128).
        sigma: its threshold in standard deviations (6).
        warmup: previous values needed before judging (None: ``window``).
        rate_window: steps of the recent spike rate (OLMo-core: 10,000).
        paper_window: previous values of the paper's score (1,000).
        paper_sigma: its threshold in standard deviations (7).
    """

    role = "observer"

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
        #: The decision about the last optimizer step; None before the first.
        self.decision: Optional[SpikeDecision] = None

    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        self.decision = self.judge(record)
        self._log(pl_module)

    def judge(self, record: StepRecord) -> SpikeDecision:
        """Add the step to the histories and decide whether it spiked."""
        loss, norm = record.loss, record.grad_norm
        finite = math.isfinite(loss) and math.isfinite(norm)
        spike = self.detector.update(loss, norm) if finite else False
        loss_spike, norm_spike = self.detector.last if finite else (False, False)
        if finite:
            self.paper_loss.update(loss)
            self.paper_grad_norm.update(norm)
        return SpikeDecision(
            step=record.step,
            spike=spike,
            loss_spike=loss_spike,
            grad_norm_spike=norm_spike,
            loss=loss,
            grad_norm=norm,
        )

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
