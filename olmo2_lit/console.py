"""Lines Lightning and torch print that do not apply to an ``olmo2-lit`` run, hidden in one place.

``olmo2-lit`` calls :func:`hide_noise` at start, in every process (Lightning's launcher reruns the same
command for the other ranks); ``--debug`` (or ``OLMO2_LIT_DEBUG=1``) shows them all again. Each entry
is the start of the hidden line and why it is hidden; ``tests/test_console.py`` runs a fit and a resume
and checks that none of them reaches the console, and that Lightning still prints each text (so an
upgrade that rewords one fails by name rather than showing it again).
"""

from __future__ import annotations

import logging
import re
import warnings

#: Lightning's informational lines (``rank_zero_info``, through the ``logging`` module).
HIDDEN_INFO = {
    "💡 Tip: For seamless cloud logging": (
        "an advertisement for a Lightning cloud service, printed by every Trainer without a LitLogger "
        "(logger_connector.py); it says nothing about the run"
    ),
    "Trainer already configured with model summary callbacks": (
        "the CLI adds OLMo2ModelSummary instead of Lightning's summary on purpose (lightning_cli.py); "
        "Lightning reports that it skipped its own, which is the intent"
    ),
}

#: Python warnings, by the start of their message.
HIDDEN_WARNINGS = {
    "`isinstance(treespec, LeafSpec)` is deprecated": (
        "torch 2.13 deprecates LeafSpec, which Lightning 2.6's own utilities/_pytree.py still builds for "
        "every batch; nothing a user can change (drop when Lightning no longer uses LeafSpec)"
    ),
    "Total length of `list` across ranks is zero": (
        "a fit without data.val_paths has no validation: the datamodule's val_dataloader returns an "
        "empty list, the documented way to say so, and Lightning warns about that list at every fit "
        "(held-out paths with too few instances get the datamodule's own warning)"
    ),
    "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not "
    "resumable": (
        "Lightning only looks for a state_dict on the DataLoader object; the datamodule saves the data "
        "position in every checkpoint and restarts there (docs/data.md, Resume), bitwise "
        "(tests/training/test_resume.py)"
    ),
}

#: Lightning's loggers that ``rank_zero_info`` writes to (lightning_utilities keeps one module-global
#: logger, which the last of these imported replaces).
LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _HideInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(tuple(HIDDEN_INFO))


_FILTER = _HideInfo()


def hide_noise() -> None:
    """Hide the lines in :data:`HIDDEN_INFO` and :data:`HIDDEN_WARNINGS` from the console."""
    for name in LIGHTNING_INFO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for start in HIDDEN_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(start))
