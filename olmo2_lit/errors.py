"""The errors olmo2_lit raises for bad input, and how ``olmo2-lit`` reports them.

Each type names a kind of culprit; its message says what is wrong, which file/field/step, and what to
do. ``olmo2-lit`` prints such an error as ``error: <message>`` (rank 0 only, exit status 2) instead of
a traceback; ``--debug`` or ``OLMO2_LIT_DEBUG=1`` shows the traceback (docs/errors.md).

They subclass ``ValueError`` (or ``FileNotFoundError``) so code that caught those keeps working.
"""

from __future__ import annotations

import os
import sys

#: Exit status of a run stopped by a user error (argparse uses 2 for bad arguments, too).
EXIT_USER_ERROR = 2
DEBUG_ENV = "OLMO2_LIT_DEBUG"


class Olmo2LitError(Exception):
    """Bad input that a person can fix; the message names the culprit and the fix."""


class ConfigError(Olmo2LitError, ValueError):
    """A configuration value that cannot work (a field, an argument, a batch layout)."""


class DataError(Olmo2LitError, ValueError):
    """A data file that cannot be used: a shard, a sidecar, an input text file."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data path that does not exist or matches nothing."""


class CheckpointError(Olmo2LitError, ValueError):
    """A Lightning ``.ckpt`` that is missing, unreadable, or from another model or data set."""


class WeightsError(Olmo2LitError, ValueError):
    """A weights directory (HF or native) that is missing, incomplete or inconsistent."""


class OutputExistsError(Olmo2LitError, FileExistsError):
    """An output path holds something we did not write; nothing is replaced."""


#: What ``olmo2-lit`` reports without a traceback: our own types, and OS errors naming a path.
REPORTED = (
    Olmo2LitError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def debug_requested(argv: list[str]) -> bool:
    """True if ``--debug`` is in ``argv`` or ``OLMO2_LIT_DEBUG`` is set to a true value."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def process_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def report(err: BaseException) -> int:
    """Print ``err`` as a short message on rank 0 (every rank raises the same one) and return the exit
    status. The message ends with how to get the traceback."""
    if process_rank() == 0:
        kind = type(err).__name__
        print(f"error ({kind}): {err}", file=sys.stderr)
        print(f"  (full traceback: rerun with --debug or {DEBUG_ENV}=1)", file=sys.stderr)
    return EXIT_USER_ERROR
