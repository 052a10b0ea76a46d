"""In-run checkpoint merging: average the weights over the last N optimizer steps before given steps.

Like OLMo-core's ``ModelMergeCallback`` (``olmo_core/train/callbacks/model_merger.py``): for each merge
step ``m`` the weights after steps ``m - N + 1 .. m`` are summed (float64 here, on CPU, on rank 0) and
their mean is written at step ``m`` as a native weights directory beside the checkpoints,
``<checkpoint dirpath>/step{m:07d}-merged/`` (``model.safetensors`` + ``model_config.json``), which
``olmo2-lit generate``, ``soup``, ``convert to-hf`` and ``init_from`` read. The running sums are not
checkpointed: as in OLMo-core, a run resumed inside a window skips that merge (with a warning); put a
checkpoint at each window start to avoid it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch import LightningModule, Trainer

from olmo2_lit.callbacks.step_callback import StepCallback
from olmo2_lit.train.step_record import StepRecord
from olmo2_lit.weights.soup import write_native


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on CPU; a sharded DTensor (FSDP2) is gathered, a collective on every rank."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().to("cpu")


class ModelMerger(StepCallback):
    """Save the average of the weights over the last ``last_n_steps`` steps before each merge step.

    Args:
        merge_steps: optimizer steps at which to write a merged model (e.g. just before the LR decay).
        every_n_steps: instead of ``merge_steps``, merge at every multiple of this up to max_steps.
        last_n_steps: how many consecutive steps, ending at the merge step, to average.
        dirpath: where to write; default: the ModelCheckpoint's dirpath, else ``<log_dir>/merged``.
    """

    def __init__(
        self,
        *,
        merge_steps: Optional[list[int]] = None,
        every_n_steps: Optional[int] = None,
        last_n_steps: int = 100,
        dirpath: Optional[str] = None,
    ) -> None:
        if (merge_steps is None) == (every_n_steps is None):
            raise ValueError("ModelMerger: give exactly one of merge_steps and every_n_steps")
        if last_n_steps < 1:
            raise ValueError(f"ModelMerger: last_n_steps must be >= 1, got {last_n_steps}")
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"ModelMerger: every_n_steps must be >= 1, got {every_n_steps}")
        if merge_steps is not None and any(m < last_n_steps for m in merge_steps):
            raise ValueError(
                f"ModelMerger: every merge step must be >= last_n_steps ({last_n_steps}), got {merge_steps}"
            )
        self.merge_steps = sorted(merge_steps or [])
        self.every_n_steps = every_n_steps
        self.last_n_steps = last_n_steps
        self.dirpath = dirpath
        self._sums: dict[int, dict[str, torch.Tensor]] = {}
        self._counts: dict[int, int] = {}
        self._skipped: set[int] = set()
        self.saved: list[Path] = []

    def _window(self, merge_step: int) -> range:
        return range(merge_step - self.last_n_steps + 1, merge_step + 1)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_steps is not None:
            if trainer.max_steps is None or trainer.max_steps < 0:
                raise ValueError("ModelMerger: every_n_steps needs trainer.max_steps")
            first = max(self.every_n_steps, self.last_n_steps)
            self.merge_steps = [m for m in range(first, trainer.max_steps + 1) if m % self.every_n_steps == 0]
        step = trainer.global_step
        for m in self.merge_steps:
            if m <= step or (step >= self._window(m).start and step < m):
                if m > step:
                    warnings.warn(
                        f"ModelMerger: resumed at step {step}, inside the window "
                        f"{self._window(m).start}..{m}; "
                        f"the merge at step {m} is skipped (put a checkpoint at the window start)",
                        stacklevel=1,
                    )
                self._skipped.add(m)

    def _out_dir(self, trainer: Trainer, merge_step: int) -> Path:
        root = self.dirpath
        if root is None and trainer.checkpoint_callback is not None:
            root = trainer.checkpoint_callback.dirpath
        if root is None:
            root = str(Path(trainer.log_dir or trainer.default_root_dir) / "merged")
        return Path(root) / f"step{merge_step:07d}-merged"

    @torch.no_grad()
    def on_step(self, trainer: Trainer, pl_module: LightningModule, record: StepRecord) -> None:
        step = record.step + 1  # optimizer steps completed
        active = [m for m in self.merge_steps if m not in self._skipped and step in self._window(m)]
        if not active:
            return
        state = pl_module.model.state_dict()
        # Only rank 0 sums; other ranks copy nothing unless the weights are sharded (FSDP2), where
        # gathering a DTensor is a collective every rank must join.
        sharded = any(hasattr(t, "full_tensor") for t in state.values())
        weights = {k: _full(t) for k, t in state.items()} if trainer.is_global_zero or sharded else {}
        if trainer.is_global_zero:
            for m in active:
                sums = self._sums.setdefault(
                    m, {k: torch.zeros_like(t, dtype=torch.float64) for k, t in weights.items()}
                )
                for k, t in weights.items():
                    sums[k].add_(t.to(torch.float64))
                self._counts[m] = self._counts.get(m, 0) + 1
        for m in active:
            if step == m:
                self._save(trainer, pl_module, m, weights)

    def _save(self, trainer: Trainer, pl_module: LightningModule, merge_step: int, weights: dict) -> None:
        if trainer.is_global_zero:
            count = self._counts.pop(merge_step)
            sums = self._sums.pop(merge_step)
            dtypes = {k: t.dtype for k, t in weights.items()}
            mean = {k: (s / count).to(dtypes[k]) for k, s in sums.items()}
            out = self._out_dir(trainer, merge_step)
            write_native(pl_module.model.config, mean, out, dtype=next(iter(dtypes.values())))
            self.saved.append(out)
        trainer.strategy.barrier()
