"""The datamodule's position in the global data order and its checkpoint state, as a mixin of
``TokenShardDataModule`` (docs/data.md, "Resume").

The position is counted in instances of the current data epoch and saved in tokens, with the run's
token counter (``tokens_seen``) beside it; Lightning puts ``state_dict()`` in every checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

from olmo2_lit.data.resume import check_converted_batch, check_saved_data, saved_position, saved_seed
from olmo2_lit.data.sampler import epoch_end

_STATE_VERSION = 1


class PositionState:
    """Advances, rolls over, skips, saves and restores the data position of a ``TokenShardDataModule``."""

    def skip_tokens(self, tokens: int) -> None:
        """Jump the position forward by ``tokens`` (rounded up to a whole micro-batch on every rank).

        For rolling back past bad data. It takes effect when the train dataloader is next iterated (a new
        epoch, or a run resumed from a checkpoint saved after the jump).
        """
        if tokens < 0:
            raise ValueError(f"skip_tokens needs tokens >= 0, got {tokens}")
        if self._train is None:
            raise RuntimeError("skip_tokens needs the shards open: call setup('fit') first")
        step = self._plan.instances_per_micro_step
        self._advance(math.ceil(tokens / self._sequence_length / step) * step)

    def _advance(self, instances: int) -> None:
        self._tokens_seen += instances * self._sequence_length
        self.position.instances += instances
        self._roll_over()

    def _roll_over(self) -> None:
        """Start the next data epoch once the last whole global batch of this one is consumed."""
        end = epoch_end(self._train.epoch_size, self._plan.global_batch)
        while self.position.instances >= end:
            self.position.epoch += 1
            self.position.instances -= end

    def state_dict(self) -> dict[str, Any]:
        """Position (epoch, tokens into it), seed and the shard-set fingerprint, for the checkpoint."""
        if self._train is None:
            return {}
        return {
            "version": _STATE_VERSION,
            "epoch": self.position.epoch,
            "tokens": self.position.instances * self._sequence_length,
            "total_tokens": self._tokens_seen,
            "seed": self.seed,
            "sequence_length": self._sequence_length,
            "order": self.order,
            "max_target_sequence_length": self.max_target_sequence_length,
            "fingerprint": self._train.fingerprint,
            "shards": self._train.shard_list,
            # read by `convert to-hf` for the exported EOS/pad ids
            "eos_token_id": self.eos_token_id,
            "vocab_size": self._vocab_size,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position (applied at ``setup`` if the shards are not open yet)."""
        if not state_dict:
            return
        if self._train is None:
            self._pending_state = dict(state_dict)
        else:
            self._apply_state(state_dict)

    def _apply_state(self, state: dict[str, Any]) -> None:
        check_saved_data(
            state,
            self._train,
            order=self.order,
            max_target_sequence_length=self.max_target_sequence_length,
            ignore_fingerprint_mismatch=self.ignore_fingerprint_mismatch,
        )
        check_converted_batch(
            state,
            sequence_length=self._sequence_length,
            global_batch_tokens=self._plan.global_batch * self._sequence_length,
        )
        self.seed = saved_seed(state, seed=self.seed, sequence_length=self._sequence_length)
        epoch, instances, self._tokens_seen = saved_position(
            state, sequence_length=self._sequence_length, step=self._plan.instances_per_micro_step
        )
        # in place: a train dataset built earlier holds this object
        self.position.epoch, self.position.instances = epoch, instances
        self._roll_over()
