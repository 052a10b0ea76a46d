"""Which tokenizer made a set of shards: the one place that reads it from their sidecars.

The datamodule (``TokenShardDataModule.tokenizer_identity``) and ``olmo2_lit.eval.tokenizer_lookup``
(from a run's config.yaml, without a datamodule) both call :func:`recorded_tokenizer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tokenizers import Tokenizer

from olmo2_lit.shard_format.layout import find_shards
from olmo2_lit.shard_format.sidecar import ShardMeta, read_meta
from olmo2_lit.shard_format.tokenizer import load_tokenizer, tokenizer_sha256


@dataclass(frozen=True)
class TokenizerIdentity:
    """The tokenizer a shard's sidecar records.

    Attributes:
        sha256: the recorded sha256 of the tokenizer's canonical JSON (:func:`tokenizer_sha256`).
        name: the recorded file name (``prepare`` writes ``tokenizer.json``).
        path: that file, found beside the shard or in its parent directory (where ``prepare`` puts it)
            with the recorded sha256; None when it is not there or is another tokenizer.
        shard: the shard whose sidecar says so.
    """

    sha256: str
    name: str
    path: Optional[Path]
    shard: Path

    def load(self) -> Optional[Tokenizer]:
        """The tokenizer from :attr:`path`, or None when it was not found."""
        return load_tokenizer(str(self.path)) if self.path is not None else None


def recorded_tokenizer(paths: Iterable[str]) -> Optional[TokenizerIdentity]:
    """The tokenizer recorded by the first sidecar among the shards of ``paths`` (files, directories or
    globs, as the datamodule takes them; ones that do not exist are passed over), or None if no shard
    has a sidecar (OLMo's own raw shards)."""
    for shard in _shards(paths):
        meta = read_meta(shard)
        if meta is not None:
            return TokenizerIdentity(
                sha256=meta.tokenizer_sha256, name=meta.tokenizer, path=_file_beside(shard, meta), shard=shard
            )
    return None


def _shards(paths: Iterable[str]) -> Iterator[Path]:
    for entry in paths:
        try:
            yield from find_shards([str(entry)])
        except FileNotFoundError:
            continue


def _file_beside(shard: Path, meta: ShardMeta) -> Optional[Path]:
    for candidate in (shard.parent / meta.tokenizer, shard.parent.parent / meta.tokenizer):
        if candidate.is_file() and tokenizer_sha256(load_tokenizer(str(candidate))) == meta.tokenizer_sha256:
            return candidate
    return None
