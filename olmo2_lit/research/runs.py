"""Which runs ``compare`` reads, and their variants and seeds.

- a sweep's directory (``sweep.json``, or the ``<variant>/seed<k>/`` layout): every run, grouped by
  variant;
- a directory named ``seed<k>`` (one run of a sweep): variant = its parent's name, so several of them
  group;
- any other directory (a plain ``fit`` output such as ``runs/olmo2``, or ``version_0`` in it): one run,
  its own variant, named as given.

A run without event files is skipped with a warning naming it.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from olmo2_lit.research.manifest import MANIFEST
from olmo2_lit.research.scalars import has_events

SEED_DIR = re.compile(r"^seed(-?\d+)$")


@dataclass(frozen=True)
class RunRef:
    """A run directory, its variant and seed (None outside a sweep)."""

    path: Path
    variant: str
    seed: Optional[int]

    @property
    def name(self) -> str:
        return self.variant if self.seed is None else f"{self.variant}/seed{self.seed}"


def discover(dirs: list[str]) -> list[RunRef]:
    """The runs under ``dirs`` (module docstring), in the order given; warns about and skips any
    without event files. Raises if none is left."""
    found: list[RunRef] = []
    for given in dirs:
        path = Path(given)
        if not path.is_dir():
            raise FileNotFoundError(f"not a directory: {given}")
        found += _runs_in(path, given)
    kept = []
    for run in found:
        if has_events(run.path):
            kept.append(run)
        else:
            print(
                f"warning: {run.path}: no TensorBoard event files (events.out.tfevents.*); skipped",
                file=sys.stderr,
            )
    if not kept:
        raise FileNotFoundError(f"no TensorBoard event files under {', '.join(dirs)}")
    return kept


def _runs_in(path: Path, given: str) -> list[RunRef]:
    manifest = path / MANIFEST
    if manifest.is_file():
        runs = json.loads(manifest.read_text())["runs"]
        return [RunRef(path / r["variant"] / f"seed{r['seed']}", r["variant"], r["seed"]) for r in runs]
    seeded = sorted(p for p in path.glob("*/seed*") if p.is_dir() and SEED_DIR.match(p.name))
    if seeded:
        return [RunRef(p, p.parent.name, int(SEED_DIR.match(p.name).group(1))) for p in seeded]
    match = SEED_DIR.match(path.resolve().name)
    if match:
        return [RunRef(path, path.resolve().parent.name, int(match.group(1)))]
    return [RunRef(path, given.rstrip("/"), None)]
