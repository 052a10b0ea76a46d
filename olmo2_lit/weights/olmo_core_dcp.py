"""OLMo-core step directories on disk: torch DCP read and written with torch's public API only.

A step directory (``stepN/``) holds ``model_and_optim/`` in DCP format, ``train/rank<r>.pt`` (OLMo-core's
``Trainer.state_dict``) and ``.metadata.json``. Reading needs no OLMo-core install: its DCP metadata names
OLMo-core's own storage-info class, which is read as :class:`StorageInfo`.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.metadata import (
    BytesStorageMetadata,
    Metadata,
    StorageMeta,
    TensorStorageMetadata,
)

from olmo2_lit.atomic import atomic_dir, atomic_file
from olmo2_lit.errors import CheckpointError

#: OLMo-core's ``.metadata.json`` beside each step directory.
STEP_METADATA = '{"ephemeral": false, "version": "3.0.0"}'

# ---------------------------------------------------------------------------------------------- reading


@dataclass
class StorageInfo:
    """Where one item's bytes are. OLMo-core's DCP writer pickles its own class for it
    (``olmo_core.distributed.checkpoint.filesystem._StorageInfo``); torch's reader needs only these
    attributes, so the metadata is read without importing OLMo-core."""

    relative_path: str
    offset: int
    length: int
    transform_descriptors: Optional[list] = None


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if name == "_StorageInfo":  # OLMo-core's or torch's: the same four fields
            return StorageInfo
        return super().find_class(module, name)


class DCPReader(FileSystemReader):
    """torch's ``FileSystemReader`` that reads OLMo-core's metadata without OLMo-core installed."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        with open(Path(self.path) / ".metadata", "rb") as f:
            metadata = _Unpickler(f).load()
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def check_dcp_files(directory: Path) -> Metadata:
    """The DCP metadata of ``directory``, after checking every file it points into is there, long enough.

    Raises:
        CheckpointError: naming the missing or truncated file.
    """
    meta_path = directory / ".metadata"
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path} is missing: {directory} is not a complete DCP checkpoint")
    try:
        metadata = DCPReader(str(directory)).read_metadata()
    except Exception as e:  # a truncated pickle
        raise CheckpointError(f"{meta_path} cannot be read ({type(e).__name__}): truncated or corrupt") from e
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
    for name, end in sorted(needed.items()):
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (the DCP metadata lists it)")
        if path.stat().st_size < end:
            raise CheckpointError(
                f"{path} is truncated: {path.stat().st_size} bytes, the metadata needs {end}"
            )
    return metadata


def read_step_dir(step_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(flat DCP state, rank 0's trainer state)`` of an OLMo-core step directory; each tensor read once."""
    for path in (step_dir / "train" / "rank0.pt",):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: {step_dir} is not an OLMo-core step directory")
    metadata = check_dcp_files(step_dir / "model_and_optim")
    state: dict[str, Any] = {}
    for key, info in metadata.state_dict_metadata.items():
        if isinstance(info, TensorStorageMetadata):
            state[key] = torch.empty(info.size, dtype=info.properties.dtype)
        elif isinstance(info, BytesStorageMetadata):
            state[key] = None  # DCP replaces it with the saved object
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, storage_reader=DCPReader(str(step_dir / "model_and_optim")), no_dist=True)
    trainer = torch.load(step_dir / "train" / "rank0.pt", map_location="cpu", weights_only=False)
    return state, trainer


def write_step_dir(out: Path, state: dict[str, Any], trainer: dict[str, Any]) -> None:
    """An OLMo-core step directory, written atomically (``out`` must not exist)."""
    with atomic_dir(out) as tmp:
        with warnings.catch_warnings():  # as in read_step_dir
            warnings.simplefilter("ignore", UserWarning)
            dcp.save(state, storage_writer=FileSystemWriter(str(tmp / "model_and_optim")), no_dist=True)
        (tmp / "train").mkdir()
        with atomic_file(tmp / "train" / "rank0.pt") as f:
            torch.save(trainer, f)
        (tmp / ".metadata.json").write_text(STEP_METADATA)
