"""SLURM on CPU: a real run under SLURM's environment variables (Lightning's SLURMEnvironment), signalled
mid-step like ``--signal=SIGUSR1@90``, saves, requeues (a stub ``scontrol`` on PATH records the call) and
stops; the requeued job (same SLURM_JOB_ID and root dir, no --ckpt_path) resumes from Lightning's
``hpc_ckpt_1.ckpt`` and continues. Guards against a preemption that loses the accumulated half of a step or
repeats a step (per-step losses must equal an uninterrupted run's bitwise), against a requeue that is never
requested, and against ``trainer.devices`` that disagrees with SLURM's tasks per node starting anyway.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import fit, scalars, tiny_args

HERE = Path(__file__).resolve().parent
CE = "train/ce_loss"


def _slurm_env(tmp_path: Path, *, tasks_per_node: int = 1) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol_calls.txt"}\n')
    scontrol.chmod(0o755)
    return {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "olmo2",  # not "bash"/"interactive", so SLURMEnvironment is detected
        "SLURM_NTASKS": str(tasks_per_node),
        "SLURM_NTASKS_PER_NODE": str(tasks_per_node),
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODELIST": "localhost",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }


def test_preempted_job_resumes_exactly_after_requeue(shards, tmp_path):
    straight = tmp_path / "straight"
    fit(tiny_args(straight, shards, max_steps=6))

    job = tmp_path / "job"
    env = {**os.environ, **_slurm_env(tmp_path)}
    signal_mid_step = ("--trainer.callbacks+=signal_at_step.SignalAtStep", "--trainer.callbacks.step=2")
    args = tiny_args(job, shards, max_steps=6, extra=signal_mid_step)
    first = subprocess.run(
        [sys.executable, "-m", "olmo2_lit", "fit", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "scontrol_calls.txt").read_text().split() == ["requeue", "4242"]
    assert (job / "hpc_ckpt_1.ckpt").is_file()
    assert [s for s, _ in scalars(job, CE)] == [0, 1, 2]  # stopped after the step the signal landed in

    second = subprocess.run(
        [sys.executable, "-m", "olmo2_lit", "fit", *tiny_args(job, shards, max_steps=6)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert scalars(job, CE) == scalars(straight, CE)  # steps 0-5, each once, bitwise


def test_devices_disagreeing_with_slurm_tasks_per_node_is_refused(shards, tmp_path, monkeypatch, capsys):
    for key, value in _slurm_env(tmp_path, tasks_per_node=2).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit):
        fit(tiny_args(tmp_path, shards, max_steps=2))  # trainer.devices 1
    assert "trainer.devices (1) disagrees with SLURM's tasks per node (2" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()
