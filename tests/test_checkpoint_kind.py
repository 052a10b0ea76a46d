"""``--ckpt_path`` of a kind the strategy cannot load: refused with the fix, before torch reads anything.

The DeepSpeed cases (a DeepSpeed directory under DDP and FSDP2, a file under DeepSpeed) run on real
checkpoints in ``tests/training/test_deepspeed_fit.py``.
"""

import pytest

from olmo2_lit.errors import CheckpointError
from olmo2_lit.train.checkpoint_io import AtomicCheckpointIO


def test_a_strategy_that_loads_one_file_refuses_a_distributed_checkpoint_directory(tmp_path):
    """The kind is read from the directory (DCP's ``.metadata``), before torch or Lightning touch it."""
    (tmp_path / "step10.ckpt").mkdir()
    (tmp_path / "step10.ckpt" / ".metadata").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a torch distributed checkpoint directory, which a strat"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "step10.ckpt")
    (tmp_path / "partial.ckpt").mkdir()
    with pytest.raises(CheckpointError, match="neither .metadata .* nor latest"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "partial.ckpt")
