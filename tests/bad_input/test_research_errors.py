"""``compare``, ``report`` and ``sweep``: a bad number, a file as ``--out`` or a malformed grid ends in one
short message naming the flag or file, before any event file is read or any directory made."""

import pytest
from conftest import assert_short_error, snapshot
from torch.utils.tensorboard import SummaryWriter


@pytest.fixture
def run(tmp_path):
    """A run directory with one event file: 12 steps of train/ce_loss."""
    writer = SummaryWriter(str(tmp_path / "run"))
    for step in range(12):
        writer.add_scalar("train/ce_loss", 5.0 - 0.1 * step, step)
    writer.close()
    return tmp_path / "run"


@pytest.mark.parametrize(
    "args, culprits",
    [
        (["--smoothing", "1.5"], ["--smoothing must be in [0, 1)", "got 1.5"]),
        (["--spike_window", "0"], ["--spike_window must be >= 2", "got 0"]),
        (["--paper_sigma", "-1"], ["--paper_sigma must be > 0", "got -1.0"]),
        (["--tags", "train/ce_loss"], ["--tags takes a list", "--tags+ train/ce_loss"]),
    ],
)
def test_bad_compare_argument_is_named_and_nothing_is_written(tmp_path, run, cli, args, culprits):
    """Guards against: `--smoothing 1.5` ending in a ValueError traceback after the runs were read and an
    empty output directory made, and `--spike_window 0` in the spike rule's traceback."""
    before = snapshot(tmp_path)
    code, out = cli(["compare", str(run), f"--out={tmp_path / 'cmp'}", *args])
    assert_short_error(code, out, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("verb", ["compare", "report"])
def test_a_file_as_out_is_refused(tmp_path, run, cli, verb):
    """Guards against: `[Errno 17] File exists` (compare) when --out names a file."""
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, out = cli([verb, str(run), f"--out={tmp_path / 'notes.txt'}"])
    assert_short_error(code, out, f"--out {tmp_path / 'notes.txt'} is a file", "pass a directory")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args, culprits",
    [
        (["--recent", "0"], ["--recent must be >= 1", "got 0"]),
        (["--spike_window", "1"], ["--spike_window must be >= 2", "got 1"]),
        (["--spike_sigma", "0"], ["--spike_sigma must be > 0", "got 0.0"]),
    ],
)
def test_bad_report_argument_is_named(tmp_path, run, cli, args, culprits):
    """Guards against: `--recent 0` (or negative) writing a report whose 'recent' verdicts cover no step,
    and `--spike_window 0` ending in the spike rule's traceback."""
    before = snapshot(tmp_path)
    code, out = cli(["report", str(run), f"--out={tmp_path / 'rep'}", *args])
    assert_short_error(code, out, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "rep").exists()


@pytest.mark.parametrize(
    "text, culprits",
    [
        ("- a\n- {b: 1}\n", ["a grid is a mapping", "not a list"]),
        ("variants:\n  a: []\nseeds: 3\n", ["'seeds' must be a list", "got 3"]),
    ],
)
def test_malformed_grid_is_named(tmp_path, cli, text, culprits):
    """Guards against: a grid whose top level is a list (`TypeError: unhashable type: 'dict'`) or whose
    seeds are one number (`'int' object is not iterable`) ending in a traceback."""
    (tmp_path / "grid.yaml").write_text(text)
    before = snapshot(tmp_path)
    code, out = cli(["sweep", f"--grid={tmp_path / 'grid.yaml'}", f"--out={tmp_path / 'sweep'}"])
    assert_short_error(code, out, "grid.yaml", *culprits)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args, culprits",
    [
        (["--threads=0"], ["--threads must be >= 1", "got 0"]),
        (["--out={tmp}/notes.txt"], ["--out", "notes.txt is a file", "pass a directory"]),
    ],
)
def test_bad_sweep_argument_is_named_before_any_run(tmp_path, cli, args, culprits):
    """Guards against: `--threads 0` starting every run (OMP_NUM_THREADS=0) and `--out` naming a file
    answered with `[Errno 17] File exists`."""
    (tmp_path / "grid.yaml").write_text("variants:\n  a: []\n")
    (tmp_path / "notes.txt").write_text("mine")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [] if any(a.startswith("--out=") for a in args) else [f"--out={tmp_path / 'sweep'}"]
    before = snapshot(tmp_path)
    code, msg = cli(["sweep", f"--grid={tmp_path / 'grid.yaml'}", *out, *args])
    assert_short_error(code, msg, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("verb", ["compare", "report"])
def test_event_files_without_scalars_are_named(tmp_path, run, cli, verb):
    """Guards against: a truncated or corrupt event file read as a run that logged nothing, so `report`
    wrote 'nothing unusual in the logged scalars' and `compare` a table of dashes, exit status 0."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "events.out.tfevents.1.host").write_bytes(next(run.glob("events.out*")).read_bytes()[:30])
    before = snapshot(tmp_path)
    code, out = cli([verb, str(broken), f"--out={tmp_path / 'out'}"])
    assert_short_error(code, out, f"{broken}: its TensorBoard event files hold no scalars", "truncated")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_compare_skips_a_run_without_scalars_naming_it(tmp_path, run, cli):
    """One broken run among good ones is left out with a warning naming it, not the whole comparison."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "events.out.tfevents.1.host").write_bytes(b"garbage")
    code, out = cli(["compare", str(run), str(broken), f"--out={tmp_path / 'out'}", "--plots=[]"])
    assert code == 0, out
    assert f"warning: {broken}: its TensorBoard event files hold no scalars" in out
    assert (tmp_path / "out" / "compare.md").read_text().startswith("# compare: 1 runs, 1 variants")
