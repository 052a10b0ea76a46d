"""LightningCLI for ``olmo2-lit fit|validate|test|predict``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from jsonargparse import set_parsing_settings
from jsonargparse.typing import register_type
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningCLI

from olmo2_lit import compat
from olmo2_lit.callbacks.checkpoint import StepCheckpoint
from olmo2_lit.callbacks.housekeeping import Housekeeping
from olmo2_lit.callbacks.model_summary import OLMo2ModelSummary
from olmo2_lit.callbacks.nonfinite_guard import NonFiniteGuard
from olmo2_lit.callbacks.predictions import PredictionWriter
from olmo2_lit.callbacks.preemption import Preemption
from olmo2_lit.callbacks.progress import StepProgressBar
from olmo2_lit.callbacks.slurm import SLURMRequeue
from olmo2_lit.callbacks.step_callback import requested_restart
from olmo2_lit.callbacks.strategy_record import StrategyRecord
from olmo2_lit.callbacks.throughput import TokenThroughput
from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.model.registry import AttentionName, BlockName, InitName, MLPName, NormName
from olmo2_lit.recipe_layers import config_syntax_error, missing_layers_error
from olmo2_lit.train.checkpoint_publish import recover
from olmo2_lit.train.lit_module import OLMo2LitModule
from olmo2_lit.train.slurm import check_slurm_layout
from olmo2_lit.train.strategies import check_strategy_name


def wants_help(argv: Optional[list[str]]) -> bool:
    """Whether ``argv`` prints help (``--help``, ``--model.help CLASS``, ``--print_config=comments``), or
    is empty (the generated configuration reference builds the parser that way). Only then are dataclass
    fields' attribute docstrings read (e.g. every ModelConfig field's): reading them parses the source of
    every class the CLI knows, most of the cost of building the parser."""
    argv = sys.argv[1:] if argv is None else argv
    return not argv or any(
        a in ("-h", "--help") or a.endswith(".help") or (a.startswith("--print_config") and "comments" in a)
        for a in argv
    )


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


class OLMo2CLI(compat.CLIHooks, LightningCLI):
    """LightningCLI with the datamodule's vocab linked into the model config, checkpointing, throughput,
    a step progress bar and a model summary on by default, and configs validated right after parsing."""

    def __init__(self, args: Optional[list[str]] = None, run: bool = True) -> None:
        argv = sys.argv[1:] if args is None else args
        # only the verb asked for gets a parser (each costs as much as the others together)
        self.verb = argv[0] if argv and argv[0] in LightningCLI.subcommands() else None
        set_parsing_settings(docstring_parse_attribute_docstrings=wants_help(argv))
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

    def subcommands(self) -> dict[str, set[str]]:
        """Lightning's subcommands, only the one being run when it is known."""
        every = LightningCLI.subcommands()
        return {self.verb: every[self.verb]} if self.verb else every

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.vocab_size", "model.config.vocab_size")
        parser.add_lightning_class_args(StepCheckpoint, "checkpoint")
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
        # On by default: a NaN step stops with a report of its data and layers (nonfinite.action: skip).
        parser.add_lightning_class_args(NonFiniteGuard, "nonfinite")

    def parse_arguments(self, parser, args) -> None:
        # before jsonargparse reads the files: a stage-2 recipe alone fails there on a field it cannot place
        argv = sys.argv[1:] if args is None else args
        missing = (
            (config_syntax_error(argv) or missing_layers_error(argv)) if isinstance(argv, list) else None
        )
        if missing:
            parser.error(missing)
        super().parse_arguments(parser, args)
        cfg = self._subcommand_config()
        max_len, seq = cfg.model.config.max_sequence_length, cfg.data.sequence_length
        if max_len < seq:
            parser.error(
                f"model.config.max_sequence_length ({max_len}) is shorter than data.sequence_length ({seq}); "
                "raise the first or lower the second"
            )
        interval = cfg.trainer.get("val_check_interval")
        if interval is not None and not interval > 0:  # Lightning divides by it after the first step
            parser.error(
                f"trainer.val_check_interval must be > 0 (steps, or a fraction of an epoch), got {interval}; "
                "to validate less often raise it, to never validate set trainer.limit_val_batches: 0"
            )
        clip, algorithm = cfg.trainer.get("gradient_clip_val"), cfg.trainer.get("gradient_clip_algorithm")
        if clip is not None and not clip >= 0:  # a negative bound would flip the gradients' sign
            parser.error(f"trainer.gradient_clip_val must be >= 0 (0 or null: no clipping), got {clip}")
        if algorithm not in (None, "norm"):
            parser.error(
                f"trainer.gradient_clip_algorithm {algorithm!r}: only norm clipping is supported; set it "
                "to norm"
            )
        try:  # before any process starts: SLURM's layout, and CUDA-only strategies named by string
            check_slurm_layout(cfg.trainer.devices, cfg.trainer.num_nodes)
            if isinstance(cfg.trainer.strategy, str):
                check_strategy_name(cfg.trainer.strategy)
        except ValueError as err:
            parser.error(str(err))

    def instantiate_classes(self) -> None:
        """Build the objects once, right after parsing; each validates its own fields on construction,
        so a bad value is a one-line error before anything runs (Lightning's Trainer raises a
        ``MisconfigurationException`` for e.g. ``trainer.devices: 0``: the same)."""
        try:
            super().instantiate_classes()
        except ValueError as err:
            self.parser.error(str(err))
        except MisconfigurationException as err:
            self.parser.error(f"{str(err).rstrip('.')}; change that setting")

    def trainer_callbacks(self, config: dict, callbacks: list) -> list:
        """Our progress bar and model summary, unless switched off or the user gave their own; the effective
        strategy settings in the log dir; SLURM requeue at a step boundary (else inert)."""
        given = list(config.get("callbacks") or []) + callbacks
        for switch, kind, ours in (
            ("enable_progress_bar", ProgressBar, StepProgressBar),
            ("enable_model_summary", ModelSummary, OLMo2ModelSummary),
        ):
            if config.get(switch) is not False and not any(isinstance(c, kind) for c in given):
                callbacks = [*callbacks, ours()]
        return [*callbacks, StrategyRecord(), SLURMRequeue()]

    def fit(self, model, datamodule=None, ckpt_path=None, **kwargs) -> None:
        """``trainer.fit``, fitted again from the checkpoint a step callback asked for once the fit stopped
        (a ``Rollback``), through the same resume path as ``--ckpt_path``, until the run ends."""
        while True:
            self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)
            ckpt_path = requested_restart(self.trainer)
            if ckpt_path is None:
                return

    def _subcommand_config(self):
        sub = self.config.get("subcommand")
        return self.config[sub] if sub else self.config

    def check_ckpt_path(self) -> None:
        """In place of LightningCLI's reading of the checkpoint's hyper-parameters into the config
        (``compat.CLIHooks``): we keep the user's config and let ``OLMo2LitModule.on_load_checkpoint`` name
        any mismatch; here, a ``ckpt_path`` that does not exist is a parse error."""
        cfg = self._subcommand_config()
        ckpt = cfg.get("ckpt_path")
        # before Lightning looks for last/hpc/ckpt_path: put back a checkpoint whose replacement a kill
        # interrupted (renames only, safe on every rank; olmo2_lit.train.checkpoint_publish)
        dirs = {cfg.get("checkpoint.dirpath"), cfg.get("trainer.default_root_dir")}
        special = ckpt in ("last", "hpc", "best", "registry")
        dirs.add(str(Path(ckpt).parent) if ckpt and not special else None)
        for directory in dirs - {None}:
            for path in recover(directory):
                print(f"restored {path}, whose replacement an interrupted save left unfinished", flush=True)
        if ckpt and not special and not Path(ckpt).exists():
            self.parser.error(f"ckpt_path: checkpoint not found: {ckpt}")
        dirpath = cfg.get("checkpoint.dirpath")
        if ckpt == "last" and dirpath and not any(Path(dirpath).glob("last*.ckpt")):
            # Lightning's own warning ends in a hint (save_last=True) that does not apply to our runs
            print(f"ckpt_path last: no last.ckpt in {dirpath} yet; this run starts from step 0", flush=True)
