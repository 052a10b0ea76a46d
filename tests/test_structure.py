"""The package's sections and the direction of their imports (docs/training.md, "Where things are").

Guards against arrows back up: the plain-torch model importing Lightning or the training code, the
shard format importing either side that uses it, the writer side of the data importing the reader side,
the reader importing the writer (except in ``prepare_data``), or any section importing the CLI; against
circles: modules that import each other, however long the loop; and against a private name of Lightning
or torch used anywhere but ``olmo2_lit/compat.py``. Read from the source with ``ast``, so a new file is
covered without a list here.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "olmo2_lit"

# section -> the olmo2_lit sections and third-party roots it must not import at module level
FORBIDDEN = {
    "model": {
        "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.research",
        "lightning",
    },
    "shard_format": {
        "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.eval",
        "olmo2_lit.model", "olmo2_lit.research", "lightning", "torch",
    },
    "data": {"olmo2_lit.prepare", "olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.research"},
    "prepare": {"olmo2_lit.data", "olmo2_lit.train", "olmo2_lit.weights", "olmo2_lit.research", "lightning"},
    "weights": {"olmo2_lit.train", "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.research", "lightning"},
    "train": {"olmo2_lit.prepare", "olmo2_lit.research"},
    # sweeps, comparisons, reports: read what runs wrote (train's metric names and spike rules); the CLI's
    # parser only inside the function that resolves a run's config
    "research": {
        "olmo2_lit.model", "olmo2_lit.data", "olmo2_lit.prepare", "olmo2_lit.weights", "lightning", "torch",
    },
}  # fmt: skip
CLI = {"olmo2_lit.cli", "olmo2_lit.lightning_cli"}


def _module_level(body: list[ast.stmt]):
    """Statements run at import: the module body and what ``if``/``try`` blocks in it hold
    (``if TYPE_CHECKING:`` included), not function or class bodies."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            yield from _module_level(node.body + node.orelse + getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions: those are deliberate, lazy edges),
    with ``from m import x`` also giving ``m.x`` (a submodule when ``x`` is one)."""
    names = set()
    for node in _module_level(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("olmo2_lit",) + parts if parts[0] == "callbacks" else parts)  # installed name


def _import_graph() -> dict[str, set[str]]:
    """Our modules (olmo2_lit/ and callbacks/) -> the ones of ours each imports at module level."""
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "callbacks").rglob("*.py"))
    modules = {_module_name(p): p for p in files}
    return {name: _module_imports(path) & modules.keys() for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each from its first name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_module_level_import_circles():
    """No two modules import each other at module level, directly or round a longer loop."""
    assert not _circles(_import_graph()), _circles(_import_graph())


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _circles(graph) == [["a", "b", "c"]]


# --- private names of other libraries: only through olmo2_lit/compat.py ---------------------------------

SOURCES = [PACKAGE, PACKAGE.parent / "callbacks"]
COMPAT = PACKAGE / "compat.py"
#: Reaches that other work removes (issue 20), as (file, source text). Each must still occur: delete the
#: entry when its line goes.
PENDING: set[tuple[str, str]] = set()
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own(base: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: our own object (a base class's private names are the next test's)."""
    if isinstance(base, ast.Name):
        return base.id in ("self", "cls")
    return isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super"


def _private_reaches(tree: ast.AST):
    """(line, source) of each import of a private name or module, ``x._name`` on another object, and
    ``getattr(x, "_name")`` (and setattr/hasattr/delattr) in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            path = (node.module or "").split(".")
            if any(_private(part) for part in path) or any(_private(a.name) for a in node.names):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Import):
            if any(_private(part) for a in node.names for part in a.name.split(".")):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node.value):
            yield node.lineno, ast.unparse(node)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            yield node.lineno, ast.unparse(node)


def _source_files():
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            if path != COMPAT:
                yield path, path.relative_to(PACKAGE.parent).as_posix()


def test_private_names_of_other_libraries_only_through_compat():
    """No file but ``olmo2_lit/compat.py`` imports a private name or module, or reads another object's
    private attribute; an upgrade then breaks one module, and tests/test_compat.py names what moved."""
    found, pending_seen = [], set()
    for path, rel in _source_files():
        for line, source in _private_reaches(ast.parse(path.read_text())):
            if (rel, source) in PENDING:
                pending_seen.add((rel, source))
            else:
                found.append(f"{rel}:{line}: {source}")
    assert not found, "private names outside olmo2_lit/compat.py (add an entry there):\n" + "\n".join(found)
    gone = PENDING - pending_seen
    assert not gone, (
        f"no longer in the source; delete from PENDING in tests/test_structure.py: {sorted(gone)}"
    )


def _module_name(rel: str) -> str:
    parts = Path(rel).with_suffix("").parts
    parts = ("olmo2_lit", *parts[1:]) if parts[0] == "olmo2_lit" else ("olmo2_lit", *parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_private_name_of_a_library_base_class_through_self():
    """Our subclasses of Lightning or torch classes neither read nor override the base's private names
    (``self._max_depth``, ``def _run_policy``): those go through a compat entry (a mixin such as
    ``compat.CLIHooks`` for an override). Checked against the installed base classes' source."""
    import importlib
    import inspect
    import re

    found = []
    for path, rel in _source_files():
        tree = ast.parse(path.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            used = {}
            for node in ast.walk(cls):
                if isinstance(node, ast.Attribute) and _own(node.value) and _private(node.attr):
                    used.setdefault(node.attr, node.lineno)
            for node in cls.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
                    used.setdefault(node.name, node.lineno)
            if not used:
                continue
            obj = getattr(importlib.import_module(_module_name(rel)), cls.name, None)
            if not isinstance(obj, type):
                continue  # defined inside a function
            for base in obj.__mro__[1:]:
                if base.__module__.split(".")[0] in ("olmo2_lit", "builtins"):
                    continue
                try:
                    source = inspect.getsource(base)
                except (OSError, TypeError):
                    source = ""
                for name, line in used.items():
                    if name in vars(base) or re.search(rf"\bself\.{name}\b", source):
                        found.append(
                            f"{rel}:{line}: {cls.name} uses {base.__module__}.{base.__qualname__}.{name}"
                        )
    assert not found, "a base class's private names outside olmo2_lit/compat.py:\n" + "\n".join(found)
