"""Pre-emption details a whole run does not pin down (``callbacks/preemption.py``): the printed resume
command replaces any earlier ``--ckpt_path`` in either spelling, and when two signals arrive before the
step ends, the first one decides the exit status."""

import os
import signal

import pytest
from lightning.pytorch import Trainer

from olmo2_lit import cli
from olmo2_lit.callbacks.preemption import Preemption, resume_command


@pytest.mark.parametrize(
    "old", [["--ckpt_path", "old.ckpt"], ["--ckpt_path=old.ckpt"], []], ids=["spaced", "equals", "none"]
)
def test_the_resume_command_holds_only_the_new_checkpoint(monkeypatch, old):
    monkeypatch.setattr(cli, "INVOCATION", ["fit", "--config", "a.yaml", *old, "--trainer.max_steps", "9"])
    assert resume_command("ckpt/last.ckpt") == (
        "olmo2-lit fit --config a.yaml --trainer.max_steps 9 --ckpt_path ckpt/last.ckpt"
    )


def test_the_first_of_two_signals_decides_the_exit_status(tmp_path):
    """SIGTERM, then SIGUSR1 before the step ends: the run exits 143 (SIGTERM's), as a shell would
    report the signal that stopped it, not 138."""
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      default_root_dir=tmp_path)  # fmt: skip
    callback = Preemption()
    callback.on_train_start(trainer, None)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR1)
    finally:
        callback.on_train_end(trainer, None)  # puts the previous handlers back
    assert callback.signum == signal.SIGTERM and callback.exit_status == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) != callback._handle
