"""What ``prepare`` wrote: the summary it returns and saves in ``manifest.json``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PrepareSummary:
    """What ``prepare`` wrote (also saved, with the settings, in ``manifest.json``)."""

    output_dir: str
    vocab_size: int
    dtype: str
    eos_token_id: int
    train_tokens: int
    val_tokens: int
    train_shards: list[str]
    val_shards: list[str]
    documents: int
    filtered_documents: int
    filtered_tokens: int
    empty_documents: int
    input_bytes: int
    seconds: float
    tokens_per_second: float
