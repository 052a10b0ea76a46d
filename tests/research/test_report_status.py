"""``report``'s first line (``_status``): a run whose event file is fresh is "still running" only while its
last logged step (0-based) is short of ``trainer.max_steps - 1``; one that logged step max_steps - 1 is
finished however fresh its file."""

from __future__ import annotations

import os
import time

import pytest

from olmo2_lit.research.report import _status


@pytest.fixture
def run(tmp_path):
    version = tmp_path / "tb" / "version_0"
    version.mkdir(parents=True)
    (version / "events.out.tfevents.1.host.0.0").write_bytes(b"")  # written just now
    (version / "config.yaml").write_text("trainer:\n  max_steps: 100\n")
    return tmp_path


def test_run_that_logged_its_last_step_is_finished(run):
    # max_steps 100 runs steps 0..99: the last one logged is step 99
    text = _status(run, 99)
    assert "Still running" not in text and text.startswith("Last logged step 99 of 100;")


def test_fresh_run_short_of_its_last_step_is_still_running(run):
    assert _status(run, 98).startswith("**Still running**") and "up to step 98 of 100" in _status(run, 98)
    assert _status(run, 0).startswith("**Still running**")


def test_old_event_file_is_not_running_wherever_it_stopped(run):
    old = time.time() - 3600
    for path in run.rglob("events.out.tfevents.*"):
        os.utime(path, (old, old))
    assert _status(run, 50).startswith("Last logged step 50 of 100;")
