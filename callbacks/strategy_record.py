"""Write the effective distributed-strategy settings to ``<log_dir>/strategy.yaml`` at the start of a run.

Lightning's saved ``config.yaml`` can drop strategy arguments (LIGHTNING.md §1), so this is the record of
what actually ran: strategy class, world size, nodes, cluster environment, precision, sharding and
mixed-precision settings, and the model's ``parallelize`` config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from lightning.pytorch import Callback

from olmo2_lit.atomic import atomic_file
from olmo2_lit.train.strategies import describe


class StrategyRecord(Callback):
    """Writes ``strategy.yaml`` beside the run's ``config.yaml`` (rank 0) at ``setup``, and again once the
    strategy has set itself up for ``fit`` (what it fills in only then, e.g. DeepSpeed's
    ``gradient_clipping`` and micro batch, is recorded too)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._write(trainer, pl_module, stage)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module, "fit")

    @staticmethod
    def _write(trainer, pl_module, stage) -> None:
        log_dir = trainer.log_dir  # a collective under some strategies: every rank asks
        if trainer.global_rank != 0 or log_dir is None:
            return
        record = {"strategy": describe(trainer.strategy), "stage": str(getattr(stage, "value", stage))}
        parallelize = getattr(pl_module, "parallelize_config", None)
        if dataclasses.is_dataclass(parallelize):
            record["model.parallelize"] = dataclasses.asdict(parallelize)
        with atomic_file(Path(log_dir) / "strategy.yaml", "w") as f:
            yaml.safe_dump(record, f, sort_keys=False)
