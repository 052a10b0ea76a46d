"""The embedded default corpus: the source of Python's own standard library.

Why this one: the quickstart must run on a fresh clone with no download, so the text has to be on
every machine where the library installs, and the one thing guaranteed there is a Python
interpreter with its standard library. The stdlib is real, human-written text (~12 MB of code,
docstrings and comments, plus ``pydoc_data/topics.py``, the language reference in English), has a
clear licence (PSF), and a small model visibly learns its structure (indentation, keywords, names)
within minutes on a CPU. It is not the same bytes on every Python version; ``prepare`` records what
it read.

Left out: ``site-packages`` (whatever the user installed, not the stdlib) and the stdlib's own test
suites (``test``, ``tests``, ``idle_test``), which Debian and Ubuntu ship in a separate package, so
that the corpus is the same on those systems as on others with that Python version. Also left out:
``encodings`` (4 MB, a third of the corpus, almost all of it generated code-page tables such as
``0x00e9: 0x0082,  # LATIN SMALL LETTER E WITH ACUTE``), which crowded out real code and made the
quickstart's samples tables of hex numbers.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

STDLIB_CORPUS = "builtin:python-stdlib"
_EXCLUDED_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test", "encodings"}
_MIN_BYTES = 1 << 20


def stdlib_root() -> Path:
    """The directory of this interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The stdlib's ``*.py`` files in sorted order, each one document of the corpus.

    Raises:
        FileNotFoundError: this Python ships no stdlib sources (some embedded builds keep only .pyc).
    """
    root = stdlib_root()
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _EXCLUDED_DIRS]  # prune: site-packages can be huge
        files += [Path(directory, n) for n in names if n.endswith(".py")]
    files.sort()
    if sum(p.stat().st_size for p in files) < _MIN_BYTES:
        raise FileNotFoundError(
            f"{root}: this Python ships under 1 MiB of stdlib sources (only .pyc?); "
            f"pass your own text files to prepare instead of {STDLIB_CORPUS!r}"
        )
    return files
