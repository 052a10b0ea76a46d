"""Atomic checkpoint files: write in the staging directory beside the target, fsync, then rename
(``olmo2_lit.train.checkpoint_publish``)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import CheckpointError
from olmo2_lit.train.checkpoint_kind import require_kind
from olmo2_lit.train.checkpoint_publish import publish, stage


class AtomicCheckpointIO(TorchCheckpointIO):
    """Like Lightning's ``TorchCheckpointIO``, but a crash mid-save never leaves a truncated
    ``.ckpt`` that looks valid: the file appears under its name only once it is complete. Loading a
    path that does not exist, or a file torch cannot read, raises ``CheckpointError`` naming it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None
    ) -> None:
        # written in the hidden staging directory (no temp name beside the checkpoints for Lightning's
        # last/hpc lookups to mistake for one), then renamed into place
        tmp = stage(path)
        with atomic_file(tmp) as f:
            torch.save(checkpoint, f)
        publish(tmp, path)

    def load_checkpoint(self, path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None):
        # the strategies that load through here (DDP, one device, FSDP v1 `full`) take one file
        require_kind(path, accepts=("file",), strategy="a strategy that loads one file (DDP, one device)")
        kwargs = {} if map_location is None else {"map_location": map_location}  # None: Lightning's default
        try:
            return super().load_checkpoint(path, weights_only=weights_only, **kwargs)
        except Exception as err:  # pickle, zip, mmap and weights_only errors alike
            # torch.load of a non-checkpoint says e.g. "KeyError: 101" or an mmap error, naming no file
            raise CheckpointError(
                f"{path}: not a readable checkpoint; it is truncated or not a .ckpt saved by olmo2-lit fit "
                "(--debug shows torch's own error)"
            ) from err
