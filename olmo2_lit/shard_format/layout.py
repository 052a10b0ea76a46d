"""Where the token ids are: the dtype rule, shard files, and the directory ``prepare`` writes.

A shard is a raw, headerless memmap file of token ids (OLMO2.md §4.4): documents are concatenated,
each followed by EOS, with no BOS. The dtype is the smallest unsigned int that holds ``vocab_size - 1``
(uint32 for the dolma2 vocab of 100,278). Files written by OLMo/Dolma tooling read as they are, given
the dtype. A prepared directory holds::

    tokenizer.json                 the tokenizer the ids came from
    train/part-00000.npy (+ part-00000.meta.json sidecar), ...
    val/part-00000.npy ...
    manifest.json                  written last: its presence means the directory is complete
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from olmo2_lit.errors import ConfigError, DataNotFoundError

UINT_DTYPES = ("uint8", "uint16", "uint32", "uint64")
#: the first bytes of an ``np.save`` file: a shard must not have them
NUMPY_MAGIC = b"\x93NUMPY"
#: the prepared directory: its manifest, its tokenizer, its splits
MANIFEST = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
SPLITS = ("train", "val")


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype holding ids ``0 .. vocab_size-1`` (OC ``NumpyDatasetConfig.get_dtype``)."""
    if vocab_size < 1:
        raise ConfigError(f"vocab_size must be >= 1, got {vocab_size}")
    for name in UINT_DTYPES:
        if vocab_size - 1 <= np.iinfo(name).max:
            return np.dtype(name)
    raise ConfigError(f"vocab_size {vocab_size} does not fit in uint64")


def find_shards(paths: list[str]) -> list[Path]:
    """Expand files, directories (their ``*.npy``, not recursive) and glob patterns, in sorted order.

    Raises:
        FileNotFoundError: a path that does not exist, a pattern that matches nothing, or a directory
            without ``*.npy`` files.
    """
    found: list[Path] = []
    for entry in paths:
        if any(c in entry for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(entry, recursive=True) if Path(p).is_file())
            if not matches:
                raise DataNotFoundError(f"{entry}: glob pattern matches no shard file")
            found.extend(matches)
        elif Path(entry).is_dir():
            matches = sorted(Path(entry).glob("*.npy"))
            if not matches:
                hint = ""
                if (Path(entry) / "manifest.json").is_file() and (Path(entry) / "train").is_dir():
                    hint = f"; it is a prepare output: give its {Path(entry) / 'train'} (and val/) instead"
                raise DataNotFoundError(f"{entry}: directory holds no *.npy shards{hint}")
            found.extend(matches)
        elif Path(entry).is_file():
            found.append(Path(entry))
        else:
            raise DataNotFoundError(f"{entry}: shard path not found")
    return found
