"""What a checkpoint carries besides weights and optimizer: model config and RNG states."""

from __future__ import annotations

import random
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


def checkpoint_lr(path: str) -> float:
    """The learning rate a Lightning checkpoint of this module ended on (its first param group).

    OLMo 2 stage 2 anneals from exactly this LR (OLMO2.md §2.4: OC ``get_lr_from_checkpoint``).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    try:
        return float(ckpt["optimizer_states"][0]["param_groups"][0]["lr"])
    except (KeyError, IndexError) as err:
        raise CheckpointError(f"{path}: no optimizer state to read the learning rate from ({err})") from None
