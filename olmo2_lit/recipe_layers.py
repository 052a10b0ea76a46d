"""Recipes that only work layered after others: a clear error, at parse time, when one is given without them.

A recipe declares the files it is layered after in its first comment lines, as the stage-2 recipes do:
``# OLMo-2-0425-1B stage 2 (OLMo trainer), layered after olmo2_1b_stage1.yaml and
olmo2_stage2_anneal.yaml.`` (names relative to the recipe's own directory). Given alone, a stage-2 recipe
failed deep in jsonargparse (``Option 't_max' is not accepted``: it sets the anneal's schedule fields
without a schedule); now the error names the file and the whole command, its layers found recursively.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Optional

LAYERED_AFTER = re.compile(r"layered after ((?:[\w./-]+\.yaml(?:,\s*|\s+and\s+)?)+)", re.IGNORECASE)


def declared_layers(recipe: Path) -> list[Path]:
    """The files ``recipe``'s leading comment says it is layered after, in order (none if it says nothing)."""
    header = []
    for line in recipe.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    match = LAYERED_AFTER.search(" ".join(header))
    names = re.findall(r"[\w./-]+\.yaml", match.group(1)) if match else []
    return [recipe.parent / name for name in names]


def full_chain(recipe: Path) -> list[Path]:
    """``recipe`` preceded by its declared layers, recursively, each once, in the order they must be given."""
    chain: list[Path] = []
    for layer in declared_layers(recipe):
        chain += [p for p in full_chain(layer) if p not in chain]
    return [*chain, recipe]


def config_files(argv: list[str]) -> list[Path]:
    """The files given with ``--config`` (or ``-c``) in ``argv``, in order (inline YAML is skipped)."""
    values = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith("--config="):
            values.append(arg.split("=", 1)[1])
    return [Path(v) for v in values if Path(v).is_file()]


def missing_layers_error(argv: list[str]) -> Optional[str]:
    """A message naming the first ``--config`` recipe given without a file it is layered after, and the
    command to run instead; None if every recipe's layers come before it (matched by file name)."""
    given = config_files(argv)
    for i, recipe in enumerate(given):
        before = {p.name for p in given[:i]}
        missing = [p.name for p in declared_layers(recipe) if p.name not in before]
        if missing:
            return (
                f"{recipe} is layered after {' and '.join(missing)}, not given before it; run:\n"
                f"  olmo2-lit {shlex.join(_with_chain(argv, full_chain(recipe)))}"
            )
    return None


def _with_chain(argv: list[str], chain: list[Path]) -> list[str]:
    """``argv`` with its ``--config`` files replaced by ``chain``, right after the verb."""
    others, skip = [], False
    for arg in argv:
        if not skip and arg not in ("--config", "-c") and not arg.startswith("--config="):
            others.append(arg)
        skip = arg in ("--config", "-c")
    n = 1 if others and not others[0].startswith("-") else 0  # the verb (fit, validate, ...)
    return [*others[:n], *[a for p in chain for a in ("--config", _shown(p))], *others[n:]]


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is under it (as a user would type it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def config_syntax_error(argv: list[str]) -> Optional[str]:
    """A message naming the first ``--config`` file that is not valid YAML, with the line and column of
    the problem; None if every one parses (jsonargparse's own message names no file)."""
    import yaml

    for path in config_files(argv):
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            return f"{path}: not valid YAML ({problem}{where}); fix the file (indentation, a missing ':')"
    return None
