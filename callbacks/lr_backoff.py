"""Scales the LR down for a while after repeated spikes (an intervention: reads the SpikeMonitor)."""

from __future__ import annotations

from collections import deque
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from olmo2_lit.callbacks.spike_monitor import SpikeMonitor, find_monitor
from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.train import metrics as M
from olmo2_lit.train.step_record import StepRecord


class LRBackoff(StepCallback):
    """After ``spikes`` spikes within ``window`` optimizer steps, multiply every group's LR by ``factor``
    for ``duration`` steps, then ramp it back to the schedule's over ``recovery`` steps.

    The schedule keeps running underneath: each step the callback scales the LR the scheduler has just
    set for the next step (an intervention: ``on_step`` runs after the scheduler's step and after the
    SpikeMonitor has judged the step), so recovery lands exactly on the schedule. A new trigger during a
    backoff restarts it. The multiplier each step ran at is logged as ``optim/lr_backoff``; the state is
    checkpointed, so resume is exact.

    Args:
        spikes: how many spikes trigger a backoff.
        window: within how many optimizer steps they must fall.
        factor: LR multiplier while backed off, in (0, 1).
        duration: optimizer steps at the reduced LR.
        recovery: optimizer steps of the linear ramp back to the schedule (0: jump back).
    """

    role = "intervention"

    def __init__(
        self,
        *,
        spikes: int = 2,
        window: int = 100,
        factor: float = 0.5,
        duration: int = 500,
        recovery: int = 100,
    ) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"LRBackoff: factor must lie in (0, 1), got {factor}")
        if spikes < 1 or window < spikes:
            raise ValueError(f"LRBackoff: need 1 <= spikes <= window, got spikes={spikes}, window={window}")
        if duration < 1 or recovery < 0:
            raise ValueError(f"LRBackoff: need duration >= 1 and recovery >= 0, got {duration}, {recovery}")
        self.spikes, self.window, self.factor = spikes, window, factor
        self.duration, self.recovery = duration, recovery
        self.steps = 0  # optimizer steps seen (monotonic, unlike global_step under rollback)
        self.spike_steps: deque[int] = deque()
        self.since_trigger: int | None = None  # steps since the backoff began; None: not backed off
        self.triggers = 0
        self.applied = 1.0  # the multiplier of the step about to run
        self._monitor: SpikeMonitor | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._monitor = find_monitor(trainer, "LRBackoff")

    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        decision = self._monitor.decision
        self.steps += 1
        if self.since_trigger is not None:
            self.since_trigger += 1
        if decision.spike:
            self.spike_steps.append(self.steps)
        while self.spike_steps and self.spike_steps[0] <= self.steps - self.window:
            self.spike_steps.popleft()
        if len(self.spike_steps) >= self.spikes:
            self.spike_steps.clear()
            self.since_trigger, self.triggers = 0, self.triggers + 1
            rank_zero_info(
                f"LRBackoff: {self.spikes} spikes within {self.window} steps at step "
                f"{decision.step}; LR x{self.factor} for {self.duration} steps"
            )
        pl_module.log(M.LR_BACKOFF, self.applied, rank_zero_only=True)  # what this step ran at
        self.applied = self.multiplier()
        if self.applied != 1.0:
            # The scheduler has just set the LR of the next step; scale that.
            for group in trainer.optimizers[0].param_groups:
                group["lr"] *= self.applied

    def multiplier(self) -> float:
        """LR multiplier for the next optimizer step."""
        t = self.since_trigger
        if t is None or t >= self.duration + self.recovery:
            self.since_trigger = None
            return 1.0
        if t < self.duration:
            return self.factor
        return self.factor + (1 - self.factor) * (t - self.duration + 1) / (self.recovery + 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "spike_steps": list(self.spike_steps),
            "since_trigger": self.since_trigger,
            "triggers": self.triggers,
            "applied": self.applied,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps, self.triggers = state_dict["steps"], state_dict["triggers"]
        self.spike_steps = deque(state_dict["spike_steps"])
        self.since_trigger, self.applied = state_dict["since_trigger"], state_dict["applied"]
