"""What a checkpoint carries besides weights and optimizer: model config and RNG states."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from olmo2_lit.errors import CheckpointError
from olmo2_lit.model import ModelConfig


def check_model_config(saved: dict, current: ModelConfig, *, path: object = None) -> None:
    """Raise a CheckpointError naming every field where a checkpoint's (at ``path``) model config differs."""
    now = current.to_dict()
    diffs = [
        f"{k}: checkpoint has {saved.get(k)!r}, config has {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k)
    ]
    if diffs:
        raise CheckpointError(
            f"{path or 'the checkpoint'} is from another model config (resume with its config):\n  "
            + "\n  ".join(diffs)
        )


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states."""
    # Plain lists and tensors only, so the checkpoint loads with torch.load(weights_only=True).
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only where both runs have it)."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def start_from_checkpoint(
    optimizer: torch.optim.Optimizer, path: str, *, optimizer_state: bool, lr: bool
) -> None:
    """Carry a stage-1 run's optimizer into a new run started with ``init_from`` (OLMo 2 stage 2).

    With ``optimizer_state``, the Adam moments and step counts of a Lightning ``.ckpt`` are loaded, as
    the OLMo trainer and OLMo-core do for the anneal; the new run's hyperparameters (peak LR, betas,
    decay) stay as configured. With ``lr``, every group starts from the LR the checkpoint ended on
    (OLMO2.md §2.4: OC ``get_lr_from_checkpoint``, the LR of the last step taken). HF and native weight
    directories carry neither.

    Args:
        optimizer: the new run's optimizer, built over the same parameter groups.
        path: ``model.init_from``.
        optimizer_state: ``model.init_optimizer_state``.
        lr: ``model.lr_from_checkpoint``.
    """
    if not Path(path).is_file():  # an HF or native weights directory
        if lr:
            raise ValueError(
                f"model.lr_from_checkpoint needs model.init_from to be a Lightning .ckpt; {path} is a "
                "weights directory with no optimizer state. Give the LR to start from instead: "
                "--model.lr_from_checkpoint false --model.optimizer.init_args.lr LR (the published stage-2 "
                'LRs: docs/recipe.md, "Stage 2\'s starting LR")'
            )
        return
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    states = ckpt.get("optimizer_states") or []
    if (optimizer_state or lr) and not states:
        raise CheckpointError(
            f"{path}: the checkpoint has no optimizer state; set model.init_optimizer_state: false "
            "(and model.lr_from_checkpoint: false) to start the optimizer fresh"
        )
    if optimizer_state:
        configured = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        try:
            optimizer.load_state_dict(states[0])
        except ValueError as err:
            raise CheckpointError(
                f"{path}: its optimizer state does not fit this run's parameter groups ({err}); set "
                "model.init_optimizer_state: false to start the optimizer fresh"
            ) from None
        for group, hparams in zip(optimizer.param_groups, configured):
            params = group["params"]
            group.clear()
            group.update(hparams, params=params)
    if lr:
        # The LR the last step ran at; the optimizer state holds the one set for the step after it.
        end_lr = ckpt.get("olmo2_lit", {}).get("step_lr") or float(states[0]["param_groups"][0]["lr"])
        for group in optimizer.param_groups:
            group["lr"] = end_lr
