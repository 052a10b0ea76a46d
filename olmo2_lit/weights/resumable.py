"""The Lightning checkpoint that a run converted from another trainer resumes from (``fit --ckpt_path``):
weights, optimizer state, the LR schedule's position, Lightning's loop counters and the data position.
Shared by the OLMo-core (``olmo_core.py``) and OLMo trainer (``olmo_trainer.py``) converters."""

from __future__ import annotations

from typing import Any

import torch

from olmo2_lit.model import ModelConfig


def resumable_checkpoint(
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    config: ModelConfig,
    *,
    step: int,
    data: dict[str, Any],
) -> dict[str, Any]:
    """A Lightning ``.ckpt`` dict that ``fit --ckpt_path`` resumes after optimizer step ``step``, from another
    trainer's weights (our names), optimizer state (ours: groups of indices with ``lr`` the one the last
    step ran at, and ``initial_lr`` the peak) and ``TokenShardDataModule`` position ``data`` (with
    ``fingerprint: None``: converted)."""
    from olmo2_lit.train.checkpoint_state import rng_state  # lazy: weights/ sits below train/
    from olmo2_lit.train.schedules import SET_LR_ON_LOAD

    lrs = [g["lr"] for g in optimizer["param_groups"]]
    return {
        "epoch": data["epoch"],
        "global_step": step,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {f"model.{k}": v for k, v in weights.items()},
        "optimizer_states": [optimizer],
        "lr_schedulers": [
            {
                "base_lrs": [g["initial_lr"] for g in optimizer["param_groups"]],
                "last_epoch": step,
                "_step_count": step + 1,
                "_is_initial": False,
                "_get_lr_called_within_step": False,
                "_last_lr": lrs,
                SET_LR_ON_LOAD: True,  # the other trainer's group LR is the last step's; ours the next one's
            }
        ],
        "loops": lightning_loops(step, epoch=data["epoch"]),
        "callbacks": {},
        "TokenShardDataModule": data,
        "olmo2_lit": {"model_config": config.to_dict(), "rng": rng_state(), "step_lr": lrs[0]},
    }


def lightning_loops(step: int, *, epoch: int) -> dict[str, Any]:
    """Lightning's loop counters for a run ``step`` optimizer steps in, at a fresh micro-batch count (the
    datamodule holds the data position; Lightning's in-epoch batch count only sets accumulation
    boundaries, so it restarts at 0)."""

    def progress(*fields, total=0, current=0):
        return {"total": dict.fromkeys(fields, total), "current": dict.fromkeys(fields, current)}

    batch = {**progress("ready", "completed", "started", "processed"), "is_last_batch": False}
    idle = {**progress("ready", "completed", "started", "processed"), "is_last_batch": False}
    return {
        "fit_loop": {
            "state_dict": {},
            "epoch_loop.state_dict": {"_batches_that_stepped": max(step - 1, 0)},
            "epoch_loop.batch_progress": batch,
            "epoch_loop.scheduler_progress": progress("ready", "completed", total=step),
            "epoch_loop.automatic_optimization.state_dict": {},
            "epoch_loop.automatic_optimization.optim_progress": {
                "optimizer": {
                    "step": progress("ready", "completed", total=step),
                    "zero_grad": progress("ready", "completed", "started", total=step),
                }
            },
            "epoch_loop.manual_optimization.state_dict": {},
            "epoch_loop.manual_optimization.optim_step_progress": progress("ready", "completed"),
            "epoch_loop.val_loop.state_dict": {},
            "epoch_loop.val_loop.batch_progress": idle,
            "epoch_progress": {
                "total": {"ready": epoch + 1, "completed": epoch, "started": epoch + 1, "processed": epoch},
                "current": {"ready": epoch + 1, "completed": epoch, "started": epoch + 1, "processed": epoch},
            },
        },
        "validate_loop": {"state_dict": {}, "batch_progress": idle},
        "test_loop": {"state_dict": {}, "batch_progress": idle},
        "predict_loop": {
            "state_dict": {},
            "batch_progress": progress("ready", "completed", "started", "processed"),
        },
    }
