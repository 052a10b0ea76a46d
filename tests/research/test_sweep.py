"""``olmo2-lit sweep`` of a tiny config, 2 variants x 2 seeds: SIGTERM to the sweep while a run is mid-step
stops it (the run saves last.ckpt), and the same command again skips the finished runs (their records and
logs untouched), resumes the interrupted one from its last.ckpt (each step logged once) and runs the rest;
then ``compare`` reads the sweep. And a SLURM job array, submitted to a real cluster on this machine
(tests/slurm_cluster.py): its task 1 trains that cell under ``srun`` and marks it done, so the next
submission leaves it out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from research_helpers import tiny_base

from olmo2_lit.research.scalars import read_scalars

ROOT = Path(__file__).resolve().parents[2]
TRAINING = ROOT / "tests" / "training"


def _sweep(grid: Path, out: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TRAINING), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "olmo2_lit", "sweep", "--grid", str(grid), "--out", str(out), *extra],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _records(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}


@pytest.mark.slow
def test_sweep_killed_midway_resumes_and_reruns_no_finished_run(shards, tmp_path):
    tiny_base(tmp_path / "base.yaml", shards, max_steps=6)
    marker = tmp_path / "paused"
    (tmp_path / "pause.yaml").write_text(
        "trainer:\n  callbacks+:\n    - class_path: signal_pause.PauseAt\n"
        f"      init_args: {{step: 3, marker: {marker}, timeout: 120}}\n"
    )
    grid = tmp_path / "grid.yaml"
    grid.write_text("base: [base.yaml]\nseeds: [0, 1]\nvariants:\n  a: []\n  b: [pause.yaml]\n")
    out = tmp_path / "out"

    first = _sweep(grid, out, tmp_path)
    _wait_for(marker, first)  # b/seed0 is in the middle of step 3
    first.send_signal(signal.SIGTERM)
    marker.unlink()
    log = first.communicate(timeout=300)[0]
    assert first.returncode == 143, log
    runs = _records(out)
    assert [runs[k]["status"] for k in ("a/seed0", "a/seed1", "b/seed0", "b/seed1")] == [
        "done",
        "done",
        "interrupted",
        "pending",
    ]
    assert (out / "b" / "seed0" / "ckpt" / "last.ckpt").is_file()
    finished = {k: (runs[k]["started"], (out / k / "fit.log").read_bytes()) for k in ("a/seed0", "a/seed1")}

    second = _sweep(grid, out, tmp_path)
    stop = threading.Event()

    def release():  # b/seed1 pauses at step 3 too: let it go on
        while not stop.is_set():
            marker.unlink(missing_ok=True)
            time.sleep(0.05)

    threading.Thread(target=release, daemon=True).start()
    log = second.communicate(timeout=600)[0]
    stop.set()
    assert second.returncode == 0, log
    assert "4 runs, 2 already done, 2 to run" in log
    runs = _records(out)
    assert {r["status"] for r in runs.values()} == {"done"}
    for key, (started, fit_log) in finished.items():  # not rerun
        assert runs[key]["started"] == started and (out / key / "fit.log").read_bytes() == fit_log
    resumed = (out / "b" / "seed0" / "fit.log").read_text()
    assert "Restoring states from the checkpoint path at" in resumed and "last.ckpt" in resumed
    (series,) = read_scalars([out / "b" / "seed0"])
    assert series["train/ce_loss"][0].tolist() == [0, 1, 2, 3, 4, 5]

    from olmo2_lit.cli import main

    main(["compare", str(out), "--out", str(tmp_path / "cmp"), "--plots", "[]"])
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| a | " in table and "| b | " in table and "(n=2)" in table


def _cpu_template(path: Path) -> Path:
    """experiments/slurm/single_node.sbatch with its GPU resources replaced by 1 task of 1 CPU, as a user
    of a CPU cluster would edit it (sbatch has no environment variable for tasks or CPUs per node, and the
    sweep submits the template's ``#SBATCH`` lines as they are)."""
    text = (ROOT / "experiments" / "slurm" / "single_node.sbatch").read_text()
    text = text.replace("#SBATCH --ntasks-per-node=8", "#SBATCH --ntasks-per-node=1")
    text = text.replace("#SBATCH --cpus-per-task=8", "#SBATCH --cpus-per-task=1")
    path.write_text(text.replace("#SBATCH --gres=gpu:8\n", ""))
    return path


@pytest.mark.slow
def test_slurm_array_runs_on_a_real_cluster(slurm_cluster, shards, tmp_path):
    """The sweep submits its job array with the real ``sbatch``; SLURM runs task 1 (``SBATCH_ARRAY_INX``
    narrows the array to it, as ``sbatch --array=1`` would) through the real ``srun``."""
    tiny_base(tmp_path / "base.yaml", shards, max_steps=3)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "base: [base.yaml]\nseeds: [0, 1]\nvariants:\n  a: []\n  b: [{model.config.qk_norm: false}]\n"
    )
    out = tmp_path / "out"
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**os.environ, **slurm_cluster.env, "PATH": path, "SBATCH_ARRAY_INX": "1"}
    submit = [
        sys.executable,
        "-m",
        "olmo2_lit",
        "sweep",
        "--grid",
        str(grid),
        "--out",
        str(out),
        "--slurm",
        "true",
        "--template",
        str(_cpu_template(tmp_path / "cpu.sbatch")),
    ]
    proc = subprocess.run(submit, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = proc.stdout.split("submitted job array ")[1].split()[0]
    assert f"submitted job array {job} (4 tasks" in proc.stdout
    assert {r["status"] for r in _records(out).values()} == {"submitted"}
    assert _records(out)["a/seed1"]["slurm_job"] == f"{job}_1"

    fields = slurm_cluster.wait_for(
        f"{job}_1",
        lambda f: f["JobState"] not in ("PENDING", "RUNNING", "COMPLETING"),
        timeout=600,
        what="ended",
    )
    logs = "\n".join(p.read_text()[-2000:] for p in (out / "slurm").glob("*.out"))
    assert fields["JobState"] == "COMPLETED", f"{fields}\n{logs}"
    record = json.loads((out / "a" / "seed1" / "sweep_run.json").read_text())
    assert record["status"] == "done" and record["returncode"] == 0
    (series,) = read_scalars([out / "a" / "seed1"])
    assert series["train/ce_loss"][0].tolist() == [0, 1, 2]
    assert not (out / "a" / "seed0" / "tb").exists()  # only task 1 ran

    again = subprocess.run(
        [*submit, "--dry_run", "true"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "#SBATCH --array=0-2" in again.stdout and str(out / "a" / "seed1") not in again.stdout
