"""Opening the training sources: validated shards, one instance index, the mixture, a fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from olmo2_lit.data.instances import InstanceIndex, chunk_size, instances_in
from olmo2_lit.data.mixture import DataSource, mixture_counts
from olmo2_lit.data.sampler import order_length
from olmo2_lit.data.shards import Shard, open_shard
from olmo2_lit.errors import DataError
from olmo2_lit.shard_format.layout import find_shards


def open_shards(
    paths: list[str], *, vocab_size: int, dtype: Optional[str], eos_token_id: Optional[int]
) -> tuple[list[Shard], Optional[int]]:
    """Find and validate shards. Returns them and the EOS id: the configured one, else the first sidecar's,
    which every later sidecar must then match."""
    shards = []
    for path in find_shards(paths):
        shard = open_shard(path, vocab_size=vocab_size, dtype=dtype, eos_token_id=eos_token_id)
        if eos_token_id is None and shard.meta is not None:
            eos_token_id = shard.meta.eos_token_id
        shards.append(shard)
    return shards, eos_token_id


@dataclass
class TrainingSet:
    """The opened training sources: one instance index over all their shards, each source's instance id
    range and share of an epoch, and the fingerprint a checkpoint's position is tied to.

    With OLMo-core's ``max_target_sequence_length`` each shard is cut at multiples of it and the order
    shuffles runs of ``chunk_size`` instances, so an epoch holds whole runs only."""

    index: InstanceIndex
    names: list[str]
    ranges: list[tuple[int, int]]
    counts: list[int]
    eos_token_id: Optional[int]
    shard_list: list[list]
    fingerprint: str
    chunk_size: int = 1

    @property
    def epoch_size(self) -> int:
        """Instances in an epoch's order."""
        return order_length(sum(self.counts), self.chunk_size)

    @classmethod
    def open(
        cls,
        sources: list[DataSource],
        *,
        sequence_length: int,
        vocab_size: int,
        dtype: Optional[str],
        eos_token_id: Optional[int],
        max_target_sequence_length: Optional[int] = None,
    ) -> TrainingSet:
        shards, ranges, names, shard_list = [], [], [], []
        for i, source in enumerate(sources):
            name = source.name or f"source{i}"
            opened, eos_token_id = open_shards(
                source.paths, vocab_size=vocab_size, dtype=dtype, eos_token_id=eos_token_id
            )
            size = sum(
                instances_in(s.num_tokens, sequence_length, max_target_sequence_length) for s in opened
            )
            if size == 0:
                raise DataError(
                    f"{name} ({source.paths}): no shard holds a full instance of "
                    f"{max_target_sequence_length or sequence_length} tokens"
                )
            start = ranges[-1][1] if ranges else 0
            ranges.append((start, start + size))
            names.append(name)
            shards += opened
            shard_list += [
                [i, Path(s.path).name, s.num_tokens, s.meta.checksum if s.meta else None] for s in opened
            ]
        counts = mixture_counts([b - a for a, b in ranges], [s.weight for s in sources])
        fingerprint = hashlib.sha256(
            json.dumps([shard_list, [s.weight for s in sources]]).encode()
        ).hexdigest()
        index = InstanceIndex(
            shards, sequence_length=sequence_length, max_target_sequence_length=max_target_sequence_length
        )
        return cls(
            index=index,
            names=names,
            ranges=ranges,
            counts=counts,
            eos_token_id=eos_token_id,
            shard_list=shard_list,
            fingerprint=fingerprint,
            chunk_size=chunk_size(sequence_length, max_target_sequence_length),
        )

    def describe(self) -> str:
        parts = [
            f"{n}: {b - a:,} instances, {c / max(b - a, 1):.2f}x per epoch"
            for n, (a, b), c in zip(self.names, self.ranges, self.counts)
        ]
        return (
            f"training data: {len(self.index.shards)} shards, {self.epoch_size:,} instances per epoch "
            f"({'; '.join(parts)})"
        )


def fingerprint_difference(saved: list[list], current: list[list]) -> str:
    """Names the first shard that differs between the checkpoint's list and the current one, and how.

    Entries are ``[source index, file name, tokens, sidecar checksum or None]``.
    """
    for old, new in zip(saved, current):
        if list(old) == list(new):
            continue
        where = f"source {new[0]} shard {new[1]}"
        if old[1] != new[1] or old[0] != new[0]:
            return (
                f"{where} ({new[2]:,} tokens) is where the checkpoint had source {old[0]} shard {old[1]} "
                f"({old[2]:,} tokens)"
            )
        if old[2] != new[2]:
            return f"{where} holds {new[2]:,} tokens, {old[2]:,} in the checkpoint"
        return (
            f"{where} has the same name and size but other content (sidecar checksum {old[3]} in the "
            f"checkpoint, {new[3]} now)"
        )
    if len(saved) != len(current):
        longer, which = (saved, "the checkpoint") if len(saved) > len(current) else (current, "now")
        extra = longer[min(len(saved), len(current))]
        return (
            f"{len(saved)} shards in the checkpoint, {len(current)} now; first extra in {which}: {extra[1]}"
        )
    return "the source weights changed"
