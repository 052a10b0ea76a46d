"""Pre-emption: SIGTERM, SIGUSR1 and SIGINT sent to a real ``olmo2-lit fit`` between two micro-batches of
a step finish that step, save it, exit with 128 + signal, and the resumed run is bitwise the same as an
uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import fit, load_weights, make_shards, scalars, tiny_args

from olmo2_lit.train.checkpoint_publish import STAGING

OLMO2_LIT = str(Path(sys.executable).with_name("olmo2-lit"))
MAX_STEPS = 8
PAUSE_STEP = 4  # 0-based: the signal arrives after micro-batch 1 of 2 of the fifth step


SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Shards, an uninterrupted run of MAX_STEPS steps, and one ``olmo2-lit fit`` process per signal,
    all started at once (their start-up, mostly imports, overlaps)."""
    shards = make_shards(tmp_path_factory.mktemp("shards"))
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "OMP_NUM_THREADS": str(torch.get_num_threads()),
    }
    procs = {}
    for signum in SIGNALS:
        root = tmp_path_factory.mktemp(signum.name)
        pause = {
            "class_path": "signal_pause.PauseAt",
            "init_args": {"step": PAUSE_STEP, "marker": str(root / "paused")},
        }
        args = tiny_args(
            root, shards, max_steps=MAX_STEPS, extra=("--trainer.callbacks", json.dumps([pause]))
        )
        procs[signum] = (
            root,
            subprocess.Popen(
                [OLMO2_LIT, "fit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ),
        )
    straight = tmp_path_factory.mktemp("straight")
    fit(tiny_args(straight, shards, max_steps=MAX_STEPS))
    yield shards, straight, procs
    for _, proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_signal_mid_step_saves_that_step_exits_nonzero_and_resumes_bitwise(runs, signum):
    """Guards against: exit status 0 on SIGTERM, no checkpoint at the signal (work lost), stopping between
    the micro-batches of a step (a checkpoint with half-accumulated gradients that resumes differently),
    and a resume command that does not work."""
    shards, straight, procs = runs
    tmp_path, proc = procs[signum]
    marker = tmp_path / "paused"
    deadline = time.monotonic() + 600  # a hang guard, not a speed requirement: 3 runs share the CPUs
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the pause"
        time.sleep(0.02)
    proc.send_signal(signum)
    # the handler runs at the paused run's next bytecode, before its step can go on, however slow the
    # machine; the pause only makes sure the signal lands between two micro-batches of one step
    time.sleep(0.2)
    marker.unlink()
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 128 + signum, err[-3000:]
    saved = tmp_path / "ckpt" / "last.ckpt"
    assert f"{signum.name}: saved step {PAUSE_STEP + 1} to {saved}" in err
    ckpt = torch.load(saved, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == PAUSE_STEP + 1
    assert ckpt["TokenShardDataModule"]["tokens"] == (PAUSE_STEP + 1) * 8 * 64  # whole steps consumed
    assert not list((tmp_path / "ckpt").glob(".*.tmp")) and not list((tmp_path / "ckpt" / STAGING).iterdir())

    command = err.split("resume with:\n", 1)[1].strip().splitlines()[0].split()
    assert command[:2] == ["olmo2-lit", "fit"] and command[-2:] == ["--ckpt_path", str(saved)]
    fit(tiny_args(tmp_path, shards, max_steps=MAX_STEPS, extra=("--ckpt_path", str(saved))))

    a, b = scalars(straight, "train/ce_loss"), scalars(tmp_path, "train/ce_loss")
    assert [s for s, _ in a] == list(range(MAX_STEPS)) and a == b  # every per-step loss, exactly
    wa, wb = load_weights(straight / "ckpt" / "last.ckpt"), load_weights(saved)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
