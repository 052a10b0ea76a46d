"""Which kind of checkpoint a ``--ckpt_path`` is, and a clear error when the run's strategy cannot load it.

Three kinds are written: one ``.ckpt`` file (DDP, one device, FSDP2 with ``save_distributed_checkpoint:
false``, FSDP v1 ``full``), a torch distributed checkpoint directory (FSDP2, FSDP v1 ``sharded``: a
``.metadata`` file) and a DeepSpeed directory (a ``latest`` file naming the tag). Each strategy loads some
of them; for the others, the error names the file, what it is, and the two ways on: make one file of it
with ``olmo2-lit convert consolidate`` (loads under DDP, one device and FSDP2, with the optimizer), or
resume under the kind of strategy that wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from olmo2_lit.errors import CheckpointError
from olmo2_lit.weights.consolidate import is_deepspeed_checkpoint, is_sharded_checkpoint

Kind = Literal["file", "distributed", "deepspeed"]

#: What each kind is called in messages, and the fragment that resumes it as it is.
DESCRIPTION = {
    "file": ("one .ckpt file", "experiments/strategies/ddp.yaml or fsdp2.yaml"),
    "distributed": ("a torch distributed checkpoint directory", "experiments/strategies/fsdp2.yaml"),
    "deepspeed": ("a DeepSpeed checkpoint directory", "the deepspeed_zero<stage>.yaml it was saved with"),
}


def checkpoint_kind(path) -> Kind:
    """The kind of checkpoint at ``path``; a ``CheckpointError`` if it is missing or an unknown directory."""
    path = Path(path)
    if path.is_file():
        return "file"
    if is_sharded_checkpoint(path):
        return "distributed"
    if is_deepspeed_checkpoint(path):
        return "deepspeed"
    if path.is_dir() and any((path / name).is_file() for name in ("config.json", "model_config.json")):
        raise CheckpointError(
            f"{path}: a weights directory (HF or native), not a training checkpoint, which --ckpt_path "
            f"resumes; start from its weights with --model.init_from {path}"
        )
    if path.is_dir():
        raise CheckpointError(
            f"{path}: a directory with neither .metadata (torch distributed checkpoint) nor latest "
            "(DeepSpeed), so not a complete checkpoint; pick another checkpoint (or its last.ckpt)"
        )
    raise CheckpointError(f"checkpoint not found: {path}")


def require_kind(path, *, accepts: tuple[Kind, ...], strategy: str) -> Kind:
    """``checkpoint_kind(path)``, or a ``CheckpointError`` naming the fix if ``strategy`` cannot load it.

    Args:
        path: the ``--ckpt_path`` given.
        accepts: the kinds this strategy loads.
        strategy: how the strategy is named in the message.
    """
    kind = checkpoint_kind(path)
    if kind in accepts:
        return kind
    what, fragment = DESCRIPTION[kind]
    if kind == "file":  # only DeepSpeed refuses a file: a consolidated one still starts it from its weights
        fix = f"start from its weights with --model.init_from {path} --model.init_optimizer_state false"
    else:
        fix = (
            f"make one file of it with `olmo2-lit convert consolidate --checkpoint {path} --out FILE.ckpt` "
            "and resume from FILE.ckpt (weights, optimizer, schedule and data position)"
        )
    raise CheckpointError(
        f"{path} is {what}, which {strategy} cannot load; {fix}, or resume with --config {fragment}"
    )
