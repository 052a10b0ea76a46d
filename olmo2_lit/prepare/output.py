"""The output directory of ``prepare``: what we may replace, and putting the new shards in place.

Nothing is deleted that ``prepare`` did not write (issue 8): ``overwrite=True`` removes only the files
the existing ``manifest.json`` lists (its shards, their sidecars, its tokenizer, the manifest), and
refuses a ``train/`` or ``val/`` directory that holds anything else.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from olmo2_lit.errors import OutputExistsError
from olmo2_lit.shard_format.layout import MANIFEST, SPLITS, TOKENIZER_FILE
from olmo2_lit.shard_format.sidecar import sidecar_path

STAGING = ".prepare-staging"


def _listed(out: Path, manifest: dict) -> set[Path]:
    """Files a manifest says ``prepare`` wrote."""
    files = {out / MANIFEST, out / manifest.get("tokenizer", TOKENIZER_FILE)}
    for split in SPLITS:
        for name in manifest.get(f"{split}_shards", []):
            files |= {out / split / name, sidecar_path(out / split / name)}
    return files


def _foreign(out: Path, ours: set[Path]) -> list[Path]:
    """Files in ``train/``, ``val/`` or at ``tokenizer.json`` that are not in ``ours``."""
    found = [p for split in SPLITS if (out / split).is_dir() for p in sorted((out / split).rglob("*"))]
    if (out / TOKENIZER_FILE).exists():
        found.append(out / TOKENIZER_FILE)
    return [p for p in found if p not in ours and not (p.is_dir() and any(q.parent == p for q in ours))]


def check_output(out: Path, overwrite: bool) -> set[Path]:
    """Refuse an output we may not replace; returns the files an overwrite will remove.

    Raises:
        OutputExistsError: a finished output without ``overwrite``; with it, files the manifest does not
            list in ``train/``/``val/`` (or a ``tokenizer.json`` without a manifest).
    """
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        if not overwrite:
            raise OutputExistsError(
                f"{manifest_path}: {out} already holds prepared shards; pass --overwrite true"
            )
        try:
            ours = _listed(out, json.loads(manifest_path.read_text()))
        except (ValueError, AttributeError) as err:
            raise OutputExistsError(
                f"{manifest_path}: unreadable ({err}), so what prepare wrote there is unknown; remove {out} "
                "yourself or pick another output_dir"
            ) from None
    else:
        ours = set()
    foreign = _foreign(out, ours)
    if foreign:
        listing = ", ".join(str(p) for p in foreign[:5])
        if len(foreign) > 5:
            listing += f" and {len(foreign) - 5} more"
        whose = f"its {MANIFEST} does not list" if ours else "prepare did not write"
        raise OutputExistsError(
            f"{out}: holds files that {whose} ({listing}); prepare replaces only its own files: move them "
            "or pick another output_dir"
        )
    return ours


def publish(staging: Path, out: Path, ours: set[Path]) -> None:
    """Remove the previous output's own files (``ours``), then move ``staging``'s into place."""
    (out / MANIFEST).unlink(missing_ok=True)  # first: a half-replaced directory is never "complete"
    for path in sorted(ours, reverse=True):
        path.unlink(missing_ok=True)
    for name in (*SPLITS, TOKENIZER_FILE):
        target = out / name
        if target.is_dir():
            target.rmdir()  # empty now: every file in it was ours (check_output)
        os.replace(staging / name, target)
    shutil.rmtree(staging)
