"""LightningCLI for ``olmo2-lit fit|validate|test|predict``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

from jsonargparse.typing import register_type
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from olmo2_lit.callbacks.housekeeping import Housekeeping
from olmo2_lit.callbacks.predictions import PredictionWriter
from olmo2_lit.callbacks.preemption import Preemption
from olmo2_lit.callbacks.throughput import TokenThroughput
from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.model import ModelConfig
from olmo2_lit.model.registry import AttentionName, BlockName, InitName, MLPName, NormName
from olmo2_lit.train.lit_module import OLMo2LitModule

# Component names are validated while parsing: an unknown name fails with the list of valid ones.
for _name_type in (BlockName, AttentionName, NormName, MLPName, InitName):
    register_type(_name_type, serializer=str, deserializer=_name_type)

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "olmo2"},
    },
    "plugins": [{"class_path": "olmo2_lit.train.checkpoint_io.AtomicCheckpointIO"}],
    "gradient_clip_val": 1.0,
}


class OLMo2CLI(LightningCLI):
    """LightningCLI with the datamodule's vocab linked into the model config, checkpointing and
    throughput always on, and configs validated right after parsing."""

    def __init__(self, args: Optional[list[str]] = None, run: bool = True) -> None:
        super().__init__(
            OLMo2LitModule,
            TokenShardDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            auto_configure_optimizers=False,
            parser_kwargs={"parser_mode": "yaml"},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.vocab_size", "model.config.vocab_size")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.every_n_train_steps": 1000,
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": -1,
                "checkpoint.filename": "step{step:07d}",
                "checkpoint.auto_insert_metric_name": False,
                # a resumed run keeps writing last.ckpt rather than last-v1.ckpt
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(TokenThroughput, "throughput")
        parser.add_lightning_class_args(Preemption, "preemption")
        parser.add_lightning_class_args(Housekeeping, "housekeeping")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        try:
            ModelConfig(**cfg.model.config.as_dict())
        except (TypeError, ValueError) as err:
            parser.error(f"model.config: {err}")
        schedule = cfg.model.get("schedule")
        if schedule is not None:
            try:
                _build(schedule.as_dict() if hasattr(schedule, "as_dict") else schedule)
            except (TypeError, ValueError) as err:
                parser.error(f"model.schedule: {err}")

    def _parse_ckpt_path(self) -> None:
        # Workaround: LightningCLI 2.5-2.6 overwrites the config with the checkpoint's
        # hyper_parameters (Lightning-AI/pytorch-lightning#20310, #20801; PR #21455 changes it).
        # We keep the user's config and let OLMo2LitModule.on_load_checkpoint name any mismatch.
        # Remove when the pinned Lightning has PR #21455.
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if ckpt and ckpt not in ("last", "hpc", "best", "registry") and not Path(ckpt).exists():
            self.parser.error(f"ckpt_path: checkpoint not found: {ckpt}")


def _build(spec: dict):
    """Instantiate a ``{class_path, init_args}`` dict (used to validate schedules at parse time)."""
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**spec.get("init_args", {}))
