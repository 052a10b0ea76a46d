"""What the rest of a run may read from the datamodule: the one declared contract between the data and
the LightningModule and callbacks (docs/data.md, "What the run reads from the datamodule").

``TokenShardDataModule`` satisfies :class:`RunData` (tests/data/test_contract.py); anything else a
callback wants from the data becomes a member here first, never a read of a private attribute.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.shard_format.identity import TokenizerIdentity


@runtime_checkable
class RunData(Protocol):
    """The datamodule as the module and callbacks see it (``trainer.datamodule``).

    Attributes:
        eos_token_id: the EOS id of the shards (configured, or read from their sidecars at ``setup``);
            None for shards without sidecars when none is configured.
    """

    eos_token_id: Optional[int]

    @property
    def batch_plan(self) -> BatchPlan:
        """Global batch, micro batch, world size, accumulation, sequence length, tokens per step."""
        ...

    @property
    def tokens_seen(self) -> int:
        """Training tokens consumed by all ranks over all epochs: the run's one token counter."""
        ...

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocab size."""
        ...

    def instance_location(self, index: int) -> tuple[str, int]:
        """Shard path and first token of training instance ``index`` (a value of ``batch["index"]``)."""
        ...

    def skip_tokens(self, tokens: int) -> None:
        """Move the data position on by ``tokens`` (rounded up to whole micro-batches): data never trained
        on (``Rollback`` skips past spiked batches)."""
        ...

    def tokenizer_identity(self) -> Optional[TokenizerIdentity]:
        """The tokenizer the shards' sidecars record, with its tokenizer.json when it is beside them;
        None for shards without sidecars."""
        ...
