"""Training mixtures: sources of shards with weights, turned into one epoch's instances.

An epoch has as many instances as all sources together (``sum(sizes)``) and gives source ``i`` the
share ``weight_i / sum(weights)`` of them. A source asked for more than it has is repeated (whole
passes, then a seeded random subset of the rest); one asked for less contributes a seeded random
subset, different each epoch. With one source, or weights proportional to the sizes, this is plain
concatenation. OLMo expresses the same thing by repeating file paths (OLMO2.md §4.2); OC's
``SourceMixtureConfig`` uses target ratios as here (§4.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from olmo2_lit.errors import ConfigError


@dataclass
class DataSource:
    """One source of the training mixture.

    Attributes:
        paths: shard files, directories (their ``*.npy``) or glob patterns, e.g. the ``train/`` folder
            written by ``olmo2-lit prepare`` or OLMo-mix-1124 ``.npy`` files.
        weight: share of each epoch's instances (weights are normalized over the sources).
        name: a label for logs and error messages (default: ``source<i>``).
    """

    paths: list[str] = field(default_factory=list)
    weight: float = 1.0
    name: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError(
                f"data.train_sources: source {self.name or ''} has no paths; list its shard files, "
                "directories or glob patterns under paths"
            )
        if not (self.weight >= 0 and np.isfinite(self.weight)):
            label = self.name or self.paths
            raise ConfigError(
                f"data.train_sources: source {label} has weight {self.weight}; a weight is a share of each "
                "epoch, >= 0"
            )


def mixture_counts(sizes: list[int], weights: list[float]) -> list[int]:
    """Instances per source in one epoch: ``sum(sizes)`` split by weight (largest remainder rounding)."""
    if len(sizes) != len(weights) or not sizes:
        raise ValueError(f"need one weight per source, got {len(sizes)} sources and {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(
            f"data.train_sources: source weights must be >= 0 with a positive sum, got {weights}; give at "
            "least one source a positive weight"
        )
    total = sum(sizes)
    exact = np.array(weights, dtype=np.float64) / sum(weights) * total
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - int(counts.sum())]:
        counts[i] += 1
    for i, (count, size) in enumerate(zip(counts, sizes)):
        if count and not size:
            raise ValueError(f"source {i} has weight {weights[i]} but no instances")
    return [int(c) for c in counts]


def epoch_instances(ranges: list[tuple[int, int]], counts: list[int], *, seed: int, epoch: int) -> np.ndarray:
    """The epoch's instance ids, source by source, before the global shuffle.

    Args:
        ranges: ``[start, stop)`` of each source's instance ids.
        counts: instances each source contributes (:func:`mixture_counts`).
        seed: data seed.
        epoch: data epoch; partial passes over a source differ between epochs.
    """
    dtype = np.uint32 if ranges[-1][1] <= np.iinfo(np.uint32).max else np.uint64
    parts = []
    for i, ((start, stop), count) in enumerate(zip(ranges, counts)):
        size = stop - start
        full, rest = divmod(count, size) if size else (0, 0)
        parts += [np.arange(start, stop, dtype=dtype)] * full
        if rest:
            rng = np.random.Generator(np.random.PCG64([seed, epoch, i]))
            parts.append(start + np.sort(rng.choice(size, rest, replace=False)).astype(dtype))
    if len(parts) == 1:
        return parts[0]  # one whole source: no concatenated copy (half the builder's peak memory)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
