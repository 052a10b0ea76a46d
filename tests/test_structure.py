"""The package's sections and the direction of their imports (docs/training.md, "Where things are").

Guards against arrows back up: the plain-torch model importing Lightning or the training code, the
reader side of the data importing the writer side (except in ``prepare_data``), or any section
importing the CLI. Read from the source with ``ast``, so a new file is covered without a list here.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "olmo2_lit"

# section -> the olmo2_lit sections and third-party roots it must not import at module level
FORBIDDEN = {
    "model": {
        "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.research",
        "lightning",
    },
    "data": {"olmo2_lit.prepare", "olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.research"},
    "prepare": {"olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.research", "lightning"},
    "weights": {"olmo2_lit.train", "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.research", "lightning"},
    "train": {"olmo2_lit.prepare", "olmo2_lit.research"},
    # sweeps, comparisons, reports: read what runs wrote (train's metric names and spike rules); the CLI's
    # parser only inside the function that resolves a run's config
    "research": {
        "olmo2_lit.model", "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.weights", "lightning", "torch",
    },
}  # fmt: skip
CLI = {"olmo2_lit.cli", "olmo2_lit.lightning_cli"}


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions: those are deliberate, lazy edges)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _hits(imports: set[str], roots: set[str]) -> set[str]:
    return {name for name in imports for root in roots if name == root or name.startswith(root + ".")}


@pytest.mark.parametrize("section", sorted(FORBIDDEN))
def test_no_arrow_points_back_up(section):
    bad = {}
    for path in sorted((PACKAGE / section).rglob("*.py")):
        hits = _hits(_module_imports(path), FORBIDDEN[section] | CLI)
        if hits:
            bad[path.relative_to(PACKAGE).as_posix()] = sorted(hits)
    assert not bad, bad


def test_the_datamodule_does_not_load_the_writer_side():
    """Importing and using the reader side leaves ``olmo2_lit.prepare`` unloaded."""
    code = (
        "import sys, olmo2_lit.data.datamodule, olmo2_lit.train.lit_module\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('olmo2_lit.prepare'))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_files_stay_small():
    """One job per file: every module under 400 lines (STYLE.md: ~300; the datamodule's 20 documented
    arguments and their checks are the largest single job)."""
    long = {
        p.relative_to(PACKAGE).as_posix(): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
