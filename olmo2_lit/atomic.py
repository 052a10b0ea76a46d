"""Atomic writes: a file or directory appears under its final name only once it is complete.

Checkpoints, shards, sidecars, manifests and exported HF directories all go through here, so an
interrupted run never leaves something truncated that looks valid.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Union

PathLike = Union[str, os.PathLike]

#: Names of our temporaries: ``.<name>.<mkstemp suffix>.tmp`` files and ``.partial`` directories.
TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
TEMP_DIR = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.partial$")


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(path: Path, *, directory: bool) -> None:
    # mkstemp/mkdtemp (and safetensors' writer) create 0600/0700; a finished file gets the usual mode.
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a hidden temp file beside ``path``; on success fsync it and rename it to ``path``.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _follow_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a hidden temp directory beside ``path``; rename it to ``path`` only if the body succeeds.

    ``path`` must not exist or be an empty directory (``os.replace`` cannot replace a full one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        for sub in tmp.rglob("*"):
            _follow_umask(sub, directory=sub.is_dir())
        _follow_umask(tmp, directory=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temps(directory: PathLike, *, min_age_s: float = 60.0) -> list[Path]:
    """Remove the temporaries an interrupted :func:`atomic_file`/:func:`atomic_dir` left in ``directory``.

    Only names that match our own temp naming (``TEMP_FILE``, ``TEMP_DIR``) and were not modified in the
    last ``min_age_s`` seconds (a save in progress elsewhere keeps writing its file) are removed.

    Returns:
        The paths removed.
    """
    directory, removed = Path(directory), []
    if not directory.is_dir():
        return removed
    now = time.time()
    for entry in directory.iterdir():
        is_tmp = entry.is_file() and TEMP_FILE.match(entry.name)
        is_partial = entry.is_dir() and TEMP_DIR.match(entry.name)
        if not (is_tmp or is_partial) or now - entry.stat().st_mtime < min_age_s:
            continue
        if is_tmp:
            entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
