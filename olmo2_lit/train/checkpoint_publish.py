"""Checkpoints appear under their final name only when complete: single files and directories alike.

Every save is written into a hidden staging directory beside its target, ``<dir>/.olmo2_staging/<name>``,
and moved into place with a rename by global rank 0 once every rank has finished writing (the
strategies put a barrier before it). The staging directory's name holds no checkpoint name, so
Lightning's lookups never see a partial save: ``--ckpt_path last`` lists ``last*.ckpt`` in the checkpoint
directory, and the SLURM resume takes the highest number in any name *containing* ``hpc_ckpt_`` in
``default_root_dir`` (a temp file named ``.hpc_ckpt_3.ckpt.x8k2.tmp`` beside it would read as number 382).

A file replaces its predecessor with one atomic ``os.replace``. A directory cannot replace a non-empty
directory in one step, so the old one is first renamed to ``.olmo2_staging/<name>.replaced``, the new one
renamed into place, and then the old one removed. A kill between those two renames leaves the previous
checkpoint whole under the staging name; :func:`recover` renames it back, and runs (renames only, safe on
every rank at once) before any checkpoint lookup of ``olmo2-lit fit`` and before every save. Renames within
one directory are atomic on POSIX filesystems and on the shared ones used for checkpoints (NFS, Lustre,
GPFS); no lock files, hard links or directory swaps are needed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Union

STAGING = ".olmo2_staging"
REPLACED = ".replaced"
PathLike = Union[str, os.PathLike]


def staging_path(path: PathLike) -> Path:
    """Where a save of ``path`` is written before it is published."""
    path = Path(path)
    return path.parent / STAGING / path.name


def stage(path: PathLike) -> Path:
    """Prepare :func:`staging_path` for a new save (global rank 0): put back any checkpoint an interrupted
    replacement left, and remove a partial save of the same name from a killed run (ours)."""
    tmp = staging_path(path)
    recover(tmp.parent.parent)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _remove(tmp)
    return tmp


def publish(tmp: PathLike, path: PathLike) -> None:
    """Move the finished save ``tmp`` (from :func:`stage`) to ``path`` (global rank 0, after all ranks wrote).

    Its files are fsynced first, so a crash of the machine after the rename cannot leave it empty.
    """
    tmp, path = Path(tmp), Path(path)
    _fsync_tree(tmp)
    if tmp.is_dir() or (path.is_dir() and not path.is_symlink()):
        if path.exists() or path.is_symlink():
            old = tmp.with_name(tmp.name + REPLACED)
            _remove(old)
            os.rename(path, old)
            os.rename(tmp, path)  # a kill before this line: recover() puts `old` back
            _fsync_dir(path.parent)
            _remove(old)
            return
        os.rename(tmp, path)
    else:
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def recover(directory: PathLike) -> list[Path]:
    """Rename back every checkpoint in ``directory`` whose replacement was interrupted (its final name is
    missing, its ``.replaced`` copy complete). Renames only: every rank may call it at the same time.

    Returns:
        The checkpoint paths restored.
    """
    staging, restored = Path(directory) / STAGING, []
    if not staging.is_dir():
        return restored
    for old in sorted(staging.glob(f"*{REPLACED}")):
        final = Path(directory) / old.name[: -len(REPLACED)]
        if final.exists() or final.is_symlink():
            continue
        try:
            os.rename(old, final)
        except FileNotFoundError:  # another rank restored it first
            continue
        restored.append(final)
    return restored


def remove_stale(directory: PathLike, *, min_age_s: float = 60.0) -> list[Path]:
    """After :func:`recover`, remove what interrupted saves left in ``directory``'s staging directory
    (global rank 0, when ``fit`` starts). Everything there was written by our saves; entries modified in the
    last ``min_age_s`` seconds are kept.

    Returns:
        The paths removed.
    """
    recover(directory)
    staging, removed, now = Path(directory) / STAGING, [], time.time()
    if not staging.is_dir():
        return removed
    for entry in staging.iterdir():
        if now - entry.lstat().st_mtime >= min_age_s:
            _remove(entry)
            removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync_tree(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a filesystem that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
