"""docs/study.md shows exactly the table experiments/study/run_study.py wrote to
experiments/study/results/compare.md (so the page cannot disagree with the run), and the plots it shows
exist; the page builder replaces only what lies between the markers."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("run_study", ROOT / "experiments" / "study" / "run_study.py")
run_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_study)


def test_page_shows_the_committed_table():
    page = run_study.PAGE.read_text()
    block = page.split(run_study.BEGIN)[1].split(run_study.END)[0]
    results = run_study.RESULTS / "compare.md"
    if not results.exists():
        pytest.skip("the study has not been run (no experiments/study/results/compare.md)")
    assert block == "\n" + run_study.table_of(results.read_text())
    for image in re.findall(r"\]\((img/study/[^)]+)\)", page):
        assert (ROOT / "docs" / image).is_file(), image


def test_build_page_replaces_only_the_marked_block():
    page = f"intro\n{run_study.BEGIN}\nold table\n{run_study.END}\noutro\n"
    table = run_study.table_of("# compare: 2 runs\n\n| a | b |\n![x](x.png)\n")
    assert table == "| a | b |\n"
    assert (
        run_study.build_page(page, table) == f"intro\n{run_study.BEGIN}\n| a | b |\n{run_study.END}\noutro\n"
    )
    with pytest.raises(ValueError, match="markers"):
        run_study.build_page("no markers", table)
