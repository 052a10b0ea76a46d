"""Sharded (torch distributed checkpoint) training checkpoints -> one Lightning ``.ckpt`` file.

Under FSDP2 (``experiments/strategies/fsdp2.yaml``) each checkpoint is a directory: one ``__<rank>_0.distcp``
file per rank, DCP's ``.metadata``, and Lightning's ``meta.pt`` (loop, data-position, scheduler and
``olmo2_lit`` state). Consolidating gathers the shards on the CPU, with no process group, into the file a
DDP or single-device run resumes from: ``state_dict`` (full tensors) and ``optimizer_states`` keyed by
parameter index in param-group order, as ``torch.optim.Optimizer.state_dict()`` keys them. DeepSpeed
ZeRO directories are read by :mod:`olmo2_lit.weights.deepspeed_state` into the same dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import torch

from olmo2_lit import compat
from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import CheckpointError

LIGHTNING_META = "meta.pt"  # Lightning's non-tensor state inside a sharded checkpoint directory
DCP_METADATA = ".metadata"


def is_sharded_checkpoint(path: Union[str, Path]) -> bool:
    """True for a torch distributed checkpoint directory."""
    return (Path(path) / DCP_METADATA).is_file()


def is_deepspeed_checkpoint(path: Union[str, Path]) -> bool:
    """True for a DeepSpeed checkpoint directory (Lightning's DeepSpeed strategy writes ``latest`` in it)."""
    return (Path(path) / "latest").is_file()


def load_sharded(path: Union[str, Path], *, with_optimizer: bool = True) -> dict[str, Any]:
    """The checkpoint in ``path`` as one Lightning checkpoint dict, full tensors on the CPU.

    Args:
        path: a directory written by a sharded save (any world size).
        with_optimizer: also gather the optimizer state (needed to resume; not for exporting weights).
    """
    path = Path(path)
    if not is_sharded_checkpoint(path):
        raise FileNotFoundError(
            f"{path} is not a sharded checkpoint directory (no {DCP_METADATA} file in it)"
        )
    shards = compat.read_distributed_checkpoint(path)
    meta = path / LIGHTNING_META
    checkpoint = torch.load(meta, map_location="cpu", weights_only=False) if meta.is_file() else {}
    # FSDP2 (ModelParallelStrategy) stores the weights under "state_dict", Lightning's FSDP (v1) under "model"
    checkpoint["state_dict"] = shards.pop("state_dict") if "state_dict" in shards else shards.pop("model")
    if with_optimizer:
        n = sum(1 for k in shards if k.startswith("optimizer_"))
        checkpoint["optimizer_states"] = [_index_keyed(shards[f"optimizer_{i}"]) for i in range(n)]
    return checkpoint


def _index_keyed(optim: dict[str, Any]) -> dict[str, Any]:
    """DCP keys optimizer state by parameter name; ``Optimizer.load_state_dict`` by position."""
    index: dict[str, int] = {}
    groups = []
    for group in optim["param_groups"]:
        ids = [index.setdefault(name, len(index)) for name in group["params"]]
        groups.append({**group, "params": ids})
    state = {index[name]: value for name, value in optim["state"].items()}
    return {"state": state, "param_groups": groups}


def consolidate(*, checkpoint: str, out: str) -> None:
    """Turn a sharded training checkpoint (a directory: FSDP2, FSDP, DeepSpeed ZeRO) into one .ckpt file.

    The file resumes the run under DDP or on one device (``fit --ckpt_path OUT``), with the optimizer (Adam's
    moments of every parameter), LR schedule, data position and RNG state, and ``convert to-hf`` exports it.

    Args:
        checkpoint: the sharded checkpoint directory, e.g. runs/ckpt/step0001000.ckpt.
        out: the .ckpt file to write; must not exist.
    """
    out_path = Path(out)
    if out_path.exists():
        raise FileExistsError(f"{out_path} already exists; pick a new --out")
    if not Path(checkpoint).exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: not found; pass a sharded checkpoint directory")
    if Path(checkpoint).is_file():
        raise CheckpointError(
            f"--checkpoint {checkpoint} is already one file; consolidate makes one of a sharded (FSDP2, "
            "DeepSpeed) checkpoint directory: use the file as it is"
        )
    if is_deepspeed_checkpoint(checkpoint):
        from olmo2_lit.weights.deepspeed_state import load_deepspeed  # needs the deepspeed package

        state = load_deepspeed(checkpoint)
    else:
        state = load_sharded(checkpoint)
    with atomic_file(out_path) as f:
        torch.save(state, f)
    n_params = sum(t.numel() for t in state["state_dict"].values())
    print(f"consolidate: {n_params:,} parameters and training state from {checkpoint} -> {out_path}")
