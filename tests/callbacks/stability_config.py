"""Writes a YAML layer with stability callbacks for the tiny runs of training_helpers.tiny_args."""

from __future__ import annotations

from pathlib import Path

import yaml

MONITOR = {"class_path": "olmo2_lit.callbacks.spike_monitor.SpikeMonitor", "init_args": {"window": 8}}


def skip_step_optimizer(rolling: int = 16) -> dict:
    return {
        "class_path": "olmo2_lit.train.skip_step.SkipStepAdamW",
        "init_args": {"lr": 1e-3, "rolling_interval_length": rolling},
    }


def layer(
    path: Path,
    callbacks: list[dict],
    *,
    optimizer: dict | None = None,
    trainer: dict | None = None,
    **sections,
) -> list[str]:
    """``--config`` args of a YAML file with these callbacks, and optionally an optimizer, more trainer
    settings and other sections."""
    config: dict = {"trainer": {"callbacks": callbacks, **(trainer or {})}, **sections}
    if optimizer is not None:
        config["model"] = {"optimizer": optimizer}
    path.write_text(yaml.safe_dump(config))
    return ["--config", str(path)]


def probe(name: str, **init_args) -> dict:
    return {"class_path": f"stability_probes.{name}", "init_args": init_args}
