"""How a sweep reads a run's own record (``sweep_run.json``) when it starts again (``_run_entry``): a
finished run with the config the grid gives is kept as done; one finished with another config (the grid
changed since) is refused, naming the run, rather than kept as done; a run that was killed is resumed."""

from __future__ import annotations

import json

import pytest

from olmo2_lit.errors import ConfigError
from olmo2_lit.research.grid import Cell
from olmo2_lit.research.manifest import RUN_RECORD
from olmo2_lit.research.sweep import _run_entry

CONFIG = {"seed_everything": 0, "model": {"config": {"d_model": 32}}}


def _cell(tmp_path, record=None) -> Cell:
    run_dir = tmp_path / "a" / "seed0"
    run_dir.mkdir(parents=True)
    if record is not None:
        (run_dir / RUN_RECORD).write_text(json.dumps(record))
    return Cell("a", 0, run_dir, ("--seed_everything", "0"))


def test_done_run_with_the_same_config_is_kept_as_done(tmp_path):
    entry = _run_entry(_cell(tmp_path, {"status": "done", "config": CONFIG, "seconds": 3.0}), CONFIG)
    assert (entry["status"], entry["seconds"], entry["config"]) == ("done", 3.0, CONFIG)


def test_done_run_whose_config_the_grid_changed_is_refused(tmp_path):
    changed = {"seed_everything": 0, "model": {"config": {"d_model": 64}}}
    cell = _cell(tmp_path, {"status": "done", "config": CONFIG})
    with pytest.raises(ConfigError, match="finished with another config than the grid now gives a/seed0"):
        _run_entry(cell, changed)


def test_runs_without_a_finished_record(tmp_path):
    assert _run_entry(_cell(tmp_path), CONFIG)["status"] == "pending"


@pytest.mark.parametrize(
    "status, now", [("running", "interrupted"), ("submitted", "interrupted"), ("failed", "failed")]
)
def test_unfinished_run_is_run_again(tmp_path, status, now):
    assert _run_entry(_cell(tmp_path, {"status": status, "config": CONFIG}), CONFIG)["status"] == now
