"""Every option olmo2_lit defines is in the table of ``tests/options_coverage.py``: tested for the effect of
its non-default value(s), or listed with why it cannot be tested here, or marked as a gap (counted, shown).

The options are found by walking the real parsers of ``fit``, ``prepare``, ``convert``, ``generate`` and
``soup`` (``tests/options_inventory.py``). A new option fails here until it is in the table; a test the
table names must exist (found by reading the file, without running it). docs/testing.md shows the table;
``python tests/test_options_coverage.py`` rewrites that section after a change.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import options_coverage as table  # noqa: E402
import options_inventory as inventory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "testing.md"
START, END = "<!-- options table: start -->", "<!-- options table: end -->"


@cache
def _tests_in(path: str) -> frozenset[str]:
    """``function`` and ``Class::method`` names of the tests defined in ``path`` (read, not imported)."""
    tree = ast.parse((ROOT / path).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {
                f"{node.name}::{m.name}" for m in node.body if getattr(m, "name", "").startswith("test")
            }
    return frozenset(names)


def missing_nodes(entry) -> list[str]:
    out = []
    for node in getattr(entry, "nodes", ()):
        path, _, name = node.partition("::")
        if not (ROOT / path).is_file() or name.split("[")[0] not in _tests_in(path):
            out.append(node)
    return out


@pytest.fixture(scope="module")
def found() -> list[str]:
    return [o.id for o in inventory.all_options()]


def test_the_walk_finds_options_of_every_kind(found):
    """Guards the walker itself: it reaches the nested classes (optimizers, schedules, callbacks, strategies,
    dataclass lists), expands finite choices into values, and leaves out Lightning's options."""
    ids = set(found)
    for expected in (
        "fit model.config.d_model",
        "fit model.config.block=pre_norm",
        "fit model.schedule:WarmupStableDecay.decay",
        "fit model.param_groups[].lr_scale",
        "fit trainer.callbacks:DownstreamEval.tasks[].limit",
        "fit trainer.strategy:FSDP2Strategy.save_distributed_checkpoint",
        "fit nonfinite.action=skip",
        "convert to-hf dtype=float32",
        "generate top_k",
        "soup weights",
        "prepare tokenizer",
    ):
        assert expected in ids, expected
    assert not [i for i in ids if i.startswith("fit trainer.") and ":" not in i]
    assert "fit checkpoint.every_n_train_steps" in inventory.lightning_options()
    assert not ids & set(inventory.lightning_options())
    assert len(found) == len(ids), "an option was found twice"


def test_every_option_is_in_the_table(found):
    """A new option fails here until the table says which test checks its effect (or why none can)."""
    missing = [o for o in found if o not in table.COVERAGE]
    stale = [o for o in table.COVERAGE if o not in set(found)]
    assert not missing, "options not in tests/options_coverage.py COVERAGE:\n" + "\n".join(missing)
    assert not stale, "COVERAGE lists options that no longer exist:\n" + "\n".join(stale)


def test_every_named_test_exists():
    """A renamed or deleted test leaves its options unchecked: the table must name tests that exist."""
    bad = {o: missing_nodes(e) for o, e in table.COVERAGE.items() if missing_nodes(e)}
    assert not bad, "\n".join(f"{o}: {n}" for o, nodes in bad.items() for n in nodes)
    for option, entry in table.COVERAGE.items():
        assert isinstance(entry, (table.Tested, table.Untestable, table.Gap)), option
        assert not isinstance(entry, table.Tested) or entry.nodes, option
        assert not isinstance(entry, table.Untestable) or len(entry.reason) > 20, option


def test_gaps_are_counted(found, capsys):
    """Not a pass/fail gate on the gaps (they are listed as such, with their reason), but the count is
    printed with every run and shown on the docs page."""
    counts = summary()
    gaps = [o for o in found if isinstance(table.COVERAGE.get(o), table.Gap)]
    with capsys.disabled():
        print(f"\noptions: {counts}; gaps: {', '.join(gaps) or 'none'}")
    assert counts["total"] == len(found)


def test_docs_table_is_current():
    """docs/testing.md shows this table; rewrite it with ``python tests/test_options_coverage.py``."""
    text = DOCS.read_text()
    assert START in text and END in text, f"{DOCS}: the markers {START} / {END} are missing"
    current = text.split(START)[1].split(END)[0]
    assert current == "\n" + render() + "\n", (
        "docs/testing.md is stale: run python tests/test_options_coverage.py"
    )


# --- the docs section ---------------------------------------------------------------------------


def summary() -> dict[str, int]:
    entries = [table.COVERAGE.get(o.id, table.GAP) for o in inventory.all_options()]
    return {
        "total": len(entries),
        "tested": sum(isinstance(e, table.Tested) for e in entries),
        "untestable": sum(isinstance(e, table.Untestable) for e in entries),
        "gap": sum(isinstance(e, table.Gap) for e in entries),
    }


def _cell(entry) -> tuple[str, str]:
    if isinstance(entry, table.Tested):
        return "tested", "<br>".join(f"`{n}`" for n in entry.nodes)
    if isinstance(entry, table.Untestable):
        return "cannot test here", entry.reason.replace("|", "\\|")
    return "**gap**", entry.reason


def render() -> str:
    counts = summary()
    lines = [
        f"{counts['total']} options (and non-default values of options with a fixed set of values): "
        f"{counts['tested']} tested for their effect, {counts['untestable']} that cannot be tested here, "
        f"{counts['gap']} gaps.",
        "",
        "| option | status | tests, or why not |",
        "|---|---|---|",
    ]
    for option in inventory.all_options():
        status, what = _cell(table.COVERAGE.get(option.id, table.GAP))
        lines.append(f"| `{option.id}` | {status} | {what} |")
    lines += [
        "",
        "Left out as Lightning's own: " + ", ".join(f"`{o}`" for o in inventory.lightning_options()) + ".",
    ]
    return "\n".join(lines)


def write_docs() -> None:
    text = DOCS.read_text()
    head, rest = text.split(START)
    tail = rest.split(END)[1]
    DOCS.write_text(head + START + "\n" + render() + "\n" + END + tail)


if __name__ == "__main__":
    write_docs()
    print(summary())
