"""Fixed-length instances cut from shards, and the batch dict built from them.

As OLMo's ``MemMapDataset`` and OLMo-core's ``NumpyFSLDataset`` (OLMO2.md §4.4): each shard is cut into
contiguous blocks of ``sequence_length`` tokens and the remainder at the end of each shard is dropped;
documents may span instances and nothing is inserted at load time. Instance ids number the blocks of all
shards in order. With OLMo-core's ``max_target_sequence_length`` the remainder is cut at a multiple of
that instead (``NumpyFSLDataset._get_file_size_and_length``), so a shard of N tokens gives
``N // max_target * (max_target // sequence_length)`` instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch

from olmo2_lit.data.shards import Shard, read_tokens
from olmo2_lit.ngram import flag_repetitive

IGNORE_INDEX = -100


def chunk_size(sequence_length: int, max_target_sequence_length: Optional[int]) -> int:
    """Instances per ``max_target_sequence_length`` block (1 without one); raises unless it is a multiple."""
    if max_target_sequence_length is None:
        return 1
    if max_target_sequence_length < sequence_length or max_target_sequence_length % sequence_length:
        raise ValueError(
            f"max_target_sequence_length {max_target_sequence_length} is not a multiple of "
            f"sequence_length {sequence_length}; make it one (OLMo 2 in OLMo-core: 8192 with 4096) or null"
        )
    return max_target_sequence_length // sequence_length


def instances_in(
    num_tokens: int, sequence_length: int, max_target_sequence_length: Optional[int] = None
) -> int:
    """Instances cut from a shard of ``num_tokens``: whole blocks of ``max_target_sequence_length`` (default
    ``sequence_length``), each giving ``max_target // sequence_length`` instances."""
    block = max_target_sequence_length or sequence_length
    return num_tokens // block * chunk_size(sequence_length, max_target_sequence_length)


class InstanceIndex:
    """Maps an instance id to ``(shard, offset)`` and reads its tokens.

    Args:
        shards: validated shards, in order.
        sequence_length: tokens per instance.
        max_target_sequence_length: OLMo-core's: cut each shard at a multiple of this (None: of
            ``sequence_length``).
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        *,
        sequence_length: int,
        max_target_sequence_length: Optional[int] = None,
    ) -> None:
        if sequence_length < 2:
            raise ValueError(f"sequence_length must be >= 2, got {sequence_length}")
        self.shards = list(shards)
        self.sequence_length = sequence_length
        counts = [
            instances_in(s.num_tokens, sequence_length, max_target_sequence_length) for s in self.shards
        ]
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])  # first id of each shard

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, instance: int) -> tuple[Shard, int]:
        """The shard holding ``instance`` and the token offset where it starts."""
        if not 0 <= instance < len(self):
            raise IndexError(f"instance {instance} outside [0, {len(self)})")
        i = int(np.searchsorted(self.offsets, instance, side="right")) - 1
        return self.shards[i], (instance - int(self.offsets[i])) * self.sequence_length

    def read(self, instance: int) -> np.ndarray:
        """The instance's ``sequence_length`` token ids (int64)."""
        shard, start = self.locate(instance)
        return read_tokens(shard, start, self.sequence_length)


def document_lengths(tokens: np.ndarray, eos_token_id: int) -> np.ndarray:
    """(B, T) ids -> (B, max_docs) int32 lengths, zero-padded; each row sums to T.

    A document ends right after each EOS, and the last one at the end of the row (OC
    ``get_document_lengths``).
    """
    batch, length = tokens.shape
    rows = []
    for row in tokens:
        ends = np.flatnonzero(row == eos_token_id) + 1
        if not ends.size or ends[-1] != length:
            ends = np.append(ends, length)
        rows.append(np.diff(ends, prepend=0))
    out = np.zeros((batch, max(len(r) for r in rows)), dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_batch(
    index: InstanceIndex,
    ids: np.ndarray,
    *,
    eos_token_id: Optional[int] = None,
    instance_filter: bool = False,
) -> dict[str, torch.Tensor]:
    """The batch dict for instance ``ids``.

    Keys: ``input_ids`` (B, T) int64; ``labels`` (B, T) int64, the next-token targets already shifted
    (``labels[:, t] = input_ids[:, t+1]``, ``labels[:, -1] = -100``); ``index`` (B,) int64, the instance
    ids; and, when ``eos_token_id`` is given, ``doc_lens`` (B, max_docs) int32 for document masking.
    With ``instance_filter``, rows with OLMo 2's repeated n-gram pattern get all labels -100
    (OLMO2.md §3.2: masked, not dropped), and ``instance_mask`` (B,) bool is False for them (OLMo-core's
    key; the loss counts a masked instance as T target tokens of zero loss).
    """
    tokens = np.stack([index.read(int(i)) for i in ids])  # (B, T)
    labels = np.full_like(tokens, IGNORE_INDEX)
    labels[:, :-1] = tokens[:, 1:]
    batch = {
        "input_ids": torch.from_numpy(tokens),
        "labels": torch.from_numpy(labels),
        "index": torch.from_numpy(np.asarray(ids, dtype=np.int64)),
    }
    if instance_filter:
        flagged = np.asarray(flag_repetitive(list(tokens)), dtype=bool)
        labels[flagged] = IGNORE_INDEX
        batch["instance_mask"] = torch.from_numpy(~flagged)
    if eos_token_id is not None:
        batch["doc_lens"] = torch.from_numpy(document_lengths(tokens, eos_token_id))
    return batch
