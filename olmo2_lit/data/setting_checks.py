"""Checks of the datamodule's numeric settings that torch, numpy or the shards would otherwise refuse with
a traceback (``num_workers: -1``, ``seed: -1``) or accept silently (an EOS id outside the vocab never
matches; ``val_batch_size: 0`` read as "unset"). Each error names the ``data.*`` field."""

from __future__ import annotations

from typing import Optional

from olmo2_lit.errors import ConfigError


def check_data_settings(
    *,
    vocab_size: int,
    seed: int,
    eos_token_id: Optional[int],
    val_batch_size: Optional[int],
    num_workers: int,
) -> None:
    """Raise a ``ConfigError`` naming the first ``data.*`` field that cannot work."""
    if val_batch_size is not None and val_batch_size < 1:
        raise ConfigError(
            f"data.val_batch_size must be >= 1 (or null: micro_batch_size), got {val_batch_size}"
        )
    if seed < 0:
        raise ConfigError(f"data.seed must be >= 0 (numpy's PCG64 takes non-negative seeds), got {seed}")
    if eos_token_id is not None and not 0 <= eos_token_id < vocab_size:
        raise ConfigError(
            f"data.eos_token_id {eos_token_id} is not a token id of data.vocab_size {vocab_size}; set "
            "the EOS id the shards were tokenized with (prepare's is in the shards' .meta.json)"
        )
    if num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0 (0: load in the main process), got {num_workers}")
