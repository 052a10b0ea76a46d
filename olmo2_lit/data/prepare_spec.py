"""``data.prepare_if_missing``: shards the datamodule builds itself (the quickstart's corpus).

The only place the reader side of the data calls the writer side (``olmo2_lit.prepare``), and only
inside :func:`prepare_if_missing`, which ``TokenShardDataModule.prepare_data()`` runs once per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lightning.pytorch.utilities import rank_zero_info

from olmo2_lit.data.mixture import DataSource


@dataclass
class PrepareSpec:
    """Shards that ``prepare_data()`` builds when ``output_dir`` has no ``manifest.json`` yet.

    A byte-level BPE of the datamodule's ``vocab_size`` is trained on the inputs unless
    ``tokenizer`` is given. Point ``train_sources`` at ``<output_dir>/train`` and ``val_paths`` at
    ``<output_dir>/val``.

    Attributes:
        output_dir: where ``prepare`` writes.
        inputs: what to tokenize; None: the embedded corpus, Python's standard library source.
        tokenizer: a tokenizer.json to use instead of training a BPE.
        max_input_bytes: a seeded sample of whole input files of about this many bytes.
        val_fraction: share of documents held out for validation.
        seed: seed of the sample and the split.
    """

    output_dir: str
    inputs: Optional[list[str]] = None
    tokenizer: Optional[str] = None
    max_input_bytes: Optional[int] = 6_000_000
    val_fraction: float = 0.05
    seed: int = 0


def prepare_if_missing(spec: PrepareSpec, train_sources: list[DataSource], *, vocab_size: int) -> None:
    """Run ``prepare`` for ``spec`` unless its manifest exists or no training source reads its output."""
    from olmo2_lit.prepare.corpus import STDLIB_CORPUS
    from olmo2_lit.prepare.prepare import prepare
    from olmo2_lit.shard_format.layout import MANIFEST

    if (Path(spec.output_dir) / MANIFEST).exists():
        return
    if not _uses_dir(train_sources, spec.output_dir):
        # e.g. quickstart.yaml with your own train_sources: its corpus is not wanted
        rank_zero_info(f"prepare_if_missing: train_sources do not read {spec.output_dir}; not preparing it")
        return
    inputs = spec.inputs or [STDLIB_CORPUS]
    rank_zero_info(f"{spec.output_dir}: no {MANIFEST}; preparing shards from {inputs}")
    prepare(
        inputs=inputs,
        output_dir=spec.output_dir,
        tokenizer=spec.tokenizer,
        vocab_size=vocab_size,
        val_fraction=spec.val_fraction,
        max_input_bytes=spec.max_input_bytes,
        seed=spec.seed,
        num_workers=1,
    )


def _uses_dir(sources: list[DataSource], directory: str) -> bool:
    """Whether any path of ``sources`` (file, directory or glob) lies inside ``directory``."""
    root = Path(directory).resolve()
    for source in sources:
        for entry in source.paths:
            fixed = Path(str(entry).split("*")[0].split("?")[0].split("[")[0] or ".").resolve()
            if fixed == root or root in fixed.parents:
                return True
    return False
