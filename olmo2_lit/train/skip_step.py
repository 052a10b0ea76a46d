"""AdamW that skips the update of a step whose loss or grad norm spikes, as OLMo-core's ``SkipStepAdamW``.

A port of OLMo-core 3.0.0 ``olmo_core/optim/skip_step_optimizer.py`` and ``optim/adamw.py`` (Apache-2.0),
op for op, so that the parameters and states agree bitwise (``tests/train/test_skip_step.py``). OLMo 2's
1B, 7B and 32B recipes train with it (OLMO2.md §3.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import torch

from olmo2_lit import compat

STATE_KEY = "skip_step"
"""Key of the loss and grad-norm history in :meth:`SkipStepAdamW.state_dict`."""


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of an FSDP2 DTensor, the tensor itself otherwise (no collective)."""
    return t.to_local() if hasattr(t, "to_local") else t


def adamw_step(p, grad, *, lr, betas, eps, weight_decay, exp_avg, exp_avg_sq, step, step_factor, stepfix):
    """One AdamW update of one tensor, every term multiplied by ``step_factor`` (0 or 1, a tensor)."""
    beta1, beta2 = betas
    p.mul_(1 - step_factor * (lr * weight_decay))
    exp_avg.lerp_(grad.type_as(exp_avg), (step_factor * (1 - beta1)).type_as(exp_avg))
    exp_avg_sq.mul_(1 - step_factor * (1 - beta2))
    exp_avg_sq.add_(step_factor * grad * grad, alpha=1 - beta2)
    bias_correction1 = 1 - beta1 ** (step + 1)
    bias_correction2 = 1 - beta2 ** (step + 1)
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / bias_correction2.sqrt()).add_(eps)
    update = -step_size * torch.div(exp_avg, denom)
    update.mul_(step_factor)
    p.add_(update)
    if stepfix:
        step.add_(step_factor)


def foreach_adamw_step(
    params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, betas, eps, weight_decay, step_factor, stepfix
):
    """:func:`adamw_step` over lists of tensors with multi-tensor kernels (lerp spelled as mul + add:
    ``_foreach_lerp_`` misbehaves with DTensor, pytorch/pytorch#132017)."""
    beta1, beta2 = betas
    compat.foreach.mul_(params, 1 - step_factor * (lr * weight_decay))
    grads = [g.type_as(ea) for g, ea in zip(grads, exp_avgs)]
    w1 = step_factor * (1 - beta1)
    compat.foreach.mul_(exp_avgs, 1.0 - w1)
    compat.foreach.add_(exp_avgs, compat.foreach.mul(grads, w1))
    grad_squares = compat.foreach.mul(grads, grads)
    w2 = step_factor * (1 - beta2)
    compat.foreach.mul_(exp_avg_sqs, 1.0 - w2)
    compat.foreach.add_(exp_avg_sqs, compat.foreach.mul(grad_squares, w2))
    steps_t = torch.stack(steps)
    bias_corrections1 = 1 - torch.pow(beta1, steps_t + 1)
    bias_corrections2 = 1 - torch.pow(beta2, steps_t + 1)
    step_sizes = lr / bias_corrections1
    denoms = compat.foreach.sqrt(exp_avg_sqs)
    compat.foreach.div_(denoms, bias_corrections2.sqrt().unbind())
    compat.foreach.add_(denoms, eps)
    updates = compat.foreach.div(exp_avgs, denoms)
    compat.foreach.mul_(updates, (-step_factor * step_sizes).unbind())
    compat.foreach.add_(params, updates)
    if stepfix:
        compat.foreach.add_(steps, [step_factor] * len(steps))


class SkipStepAdamW(torch.optim.Optimizer):
    """AdamW that skips a step whose CE loss or grad norm is more than ``sigma_factor`` standard deviations
    above the mean of the previous values (OLMO2.md §3.3), with OLMo 2's AdamW defaults (§2.2).

    The caller sets :attr:`latest_loss` (the CE loss of the whole global batch, reduced over ranks) and
    :attr:`latest_grad_norm` (the global norm before clipping) before each :meth:`step`; OLMo2LitModule does
    this. The last ``rolling_interval_length + 1`` values are kept; while fewer than
    ``max(2, rolling_interval_length // 2)`` losses are recorded every step is taken. Otherwise the step is
    taken iff ``loss - mean <= sigma_factor * std`` and the same for the grad norm, with ``torch.std_mean``
    (Bessel-corrected) over the history without the current value. Skipped values stay in the history.

    The decision is a 0/1 tensor multiplying the weight decay, both moment updates, the update and the step
    increment: no host sync, and every rank agrees because the inputs are global. A skipped step leaves
    parameters, moments and step count unchanged.

    Args:
        params: parameters or parameter groups.
        lr: peak learning rate.
        betas: Adam betas.
        eps: Adam epsilon.
        weight_decay: decoupled weight decay (groups may override it).
        rolling_interval_length: how many previous values the mean and std are taken over (OLMo 2: 128).
        sigma_factor: skip when a value exceeds the mean by more than this many standard deviations (6).
        dtype: dtype of the moments (None: the parameter's).
        foreach: multi-tensor kernels (faster on GPU; OLMo-core's config default). The OLMo 2 32B script
            used the per-tensor path (``foreach=False``), the default here.
        step_increment_bugfix: increment the step counter. False reproduces OLMo-core before commit
            c41962aba, which trained the 32B: ``step`` stays 0, so the bias corrections stay at their
            first-step values (effective LR ~2.24x for betas (0.9, 0.95), OLMO2.md §3.3).
    """

    def __init__(
        self,
        params: Iterable,
        *,
        lr: float = 4e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        rolling_interval_length: int = 128,
        sigma_factor: float = 6,
        dtype: Optional[torch.dtype] = None,
        foreach: bool = False,
        step_increment_bugfix: bool = True,
    ) -> None:
        if lr < 0:
            raise ValueError(f"SkipStepAdamW: lr must be >= 0, got {lr}")
        if not all(0.0 <= b <= 1.0 for b in betas):
            raise ValueError(f"SkipStepAdamW: betas must lie in [0, 1], got {betas}")
        if sigma_factor <= 0:
            raise ValueError(f"SkipStepAdamW: sigma_factor must be > 0, got {sigma_factor}")
        if rolling_interval_length < 6:
            # The warm-up count is max(2, n // 2); under 3 the std is over one value, NaN, and every step
            # would be skipped for good.
            raise ValueError(
                f"SkipStepAdamW: rolling_interval_length must be >= 6 so that its warm-up count "
                f"max(2, n // 2) leaves >= 2 values for the std, got {rolling_interval_length}"
            )
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.rolling_interval_length = rolling_interval_length
        self.sigma_factor = sigma_factor
        self.dtype = dtype
        self.foreach = foreach
        self.stepfix = step_increment_bugfix
        self._losses: list[torch.Tensor] = []
        self._grad_norms: list[torch.Tensor] = []
        self._step_skipped: Optional[torch.Tensor] = None
        self._device: Optional[torch.device] = None

    # --- history ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        if self._device is None:
            found = (p.device for g in self.param_groups for p in g["params"] if p.numel() > 0)
            self._device = next(found, torch.device("cpu"))
        return self._device

    @property
    def latest_loss(self) -> Optional[torch.Tensor]:
        """The last CE loss recorded; set it before each :meth:`step`."""
        return self._losses[-1] if self._losses else None

    @latest_loss.setter
    def latest_loss(self, loss: torch.Tensor) -> None:
        self._losses.append(loss)
        del self._losses[: -(self.rolling_interval_length + 1)]

    @property
    def latest_grad_norm(self) -> Optional[torch.Tensor]:
        """The last pre-clip global grad norm recorded; set it before each :meth:`step`."""
        return self._grad_norms[-1] if self._grad_norms else None

    @latest_grad_norm.setter
    def latest_grad_norm(self, grad_norm: torch.Tensor) -> None:
        self._grad_norms.append(grad_norm)
        del self._grad_norms[: -(self.rolling_interval_length + 1)]

    @torch.compiler.disable()
    def get_step_factor(self) -> torch.Tensor:
        """1.0 to take the step, 0.0 to skip it, as a float tensor on the parameters' device."""
        if len(self._losses) < max(2, self.rolling_interval_length // 2):
            return torch.tensor(1.0).to(self.device)
        loss_std, loss_mean = torch.std_mean(torch.stack(self._losses[:-1]))
        if self._grad_norms:
            norm_std, norm_mean = torch.std_mean(torch.stack(self._grad_norms[:-1]))
            factor = torch.logical_and(
                (self.latest_loss - loss_mean) <= self.sigma_factor * loss_std,
                (self.latest_grad_norm - norm_mean) <= self.sigma_factor * norm_std,
            )
        else:
            factor = (self.latest_loss - loss_mean) <= self.sigma_factor * loss_std
        return factor.float()

    @property
    def step_skipped(self) -> torch.Tensor:
        """1.0 if the last :meth:`step` was skipped, else 0.0 (a tensor: reading it does not sync)."""
        return self._step_skipped if self._step_skipped is not None else torch.tensor(0.0)

    # --- the update ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None) -> Optional[torch.Tensor]:
        loss = None
        if closure is not None:  # Lightning's closure runs forward, backward and on_before_optimizer_step
            with torch.enable_grad():
                loss = closure()
        step_factor = self.get_step_factor()
        self._step_skipped = 1 - step_factor
        for group in self.param_groups:
            tensors = [self._tensors(p) for p in group["params"] if p.grad is not None]
            if not tensors:
                continue
            opts = dict(
                lr=group["lr"],
                betas=group["betas"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                step_factor=step_factor,
                stepfix=self.stepfix,
            )
            if self.foreach:
                foreach_adamw_step(*map(list, zip(*tensors)), **opts)
            else:
                for p, grad, exp_avg, exp_avg_sq, step in tensors:
                    adamw_step(p, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, step=step, **opts)
        return loss

    def _tensors(self, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, dtype=self.dtype)
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=self.dtype)
        elif state["step"].device != p.device:  # torch's load_state_dict leaves "step" where it was saved
            state["step"] = state["step"].to(p.device)
        return (
            _local(p),
            _local(p.grad),
            _local(state["exp_avg"]),
            _local(state["exp_avg_sq"]),
            state["step"],
        )

    # --- checkpoint ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Torch's optimizer state plus the loss and grad-norm history, so a resumed run skips exactly
        the steps the uninterrupted run would (OLMo-core does not save it)."""
        out = super().state_dict()
        out[STATE_KEY] = self.history_state()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        history = state_dict.pop(STATE_KEY, None)
        super().load_state_dict(state_dict)
        if history is not None:
            self.load_history_state(history)

    def history_state(self) -> dict[str, list[torch.Tensor]]:
        """The loss and grad-norm history (tensors, on their device)."""
        return {"losses": list(self._losses), "grad_norms": list(self._grad_norms)}

    def load_history_state(self, history: dict[str, list[torch.Tensor]]) -> None:
        """Restore :meth:`history_state`, moving the values to the parameters' device."""
        self._losses = [t.to(self.device) for t in history["losses"]]
        self._grad_norms = [t.to(self.device) for t in history["grad_norms"]]
