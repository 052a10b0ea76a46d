"""Checkpoint saves are atomic: a run killed in the middle of a save resumes from the previous checkpoint.

Guards against a sharded (directory) save written in place, which a kill leaves half-written under the
checkpoint's name, or with the new shards beside the previous ``meta.pt`` (weights of one step, loop and
data position of another), and against temporaries Lightning's ``last``/``hpc`` lookups mistake for a
checkpoint (``hpc_ckpt_`` is matched anywhere in a name, digits of a temp suffix included).
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from training_helpers import fit_subprocess, scalars, tiny_args

from olmo2_lit.train import checkpoint_publish as cp
from olmo2_lit.train.checkpoint_io import AtomicCheckpointIO

HERE = Path(__file__).resolve().parent
STRATEGIES = HERE.parents[1] / "experiments" / "strategies"
# fp32 compute on CPU, so the resumed losses can be compared bitwise
FSDP2 = ("--config", str(STRATEGIES / "fsdp2.yaml"), "--trainer.devices", "2",
         "--model.parallelize.fsdp_param_dtype", "null",
         "--model.parallelize.fsdp_reduce_dtype", "null")  # fmt: skip
EVERY_2 = ("--checkpoint.every_n_train_steps", "2")
CE = "train/ce_loss"


def _run(args, cwd):
    return fit_subprocess(args, cwd, pythonpath=(HERE,), check=False)


@pytest.mark.slow
def test_fsdp2_run_killed_mid_save_resumes_from_the_previous_checkpoint(shards, tmp_path):
    """2 FSDP2 ranks, saves at steps 2 and 4 (each a step directory, then last.ckpt). SIGKILL in the middle
    of the 4th save (last.ckpt at step 4, replacing last.ckpt of step 2); ``--ckpt_path last`` resumes from
    step 2, and the losses after it equal the uninterrupted run's, bitwise."""
    straight = tmp_path / "straight"
    proc = _run(tiny_args(straight, shards, max_steps=4, extra=(*FSDP2, *EVERY_2)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = tmp_path / "run"
    kill = ("--trainer.callbacks+=kill_mid_save.KillMidSave", "--trainer.callbacks.at_save=4")
    proc = _run(tiny_args(run, shards, max_steps=4, extra=(*FSDP2, *EVERY_2, *kill)), tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpt = run / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == [cp.STAGING, "last.ckpt", "step0000002.ckpt",
                                                      "step0000004.ckpt"]  # fmt: skip
    partial = ckpt / cp.STAGING / "last.ckpt"  # the killed save: shards written, no meta.pt
    assert (partial / ".metadata").is_file() and not (partial / "meta.pt").exists()
    last_meta = torch.load(ckpt / "last.ckpt" / "meta.pt", weights_only=False)
    assert last_meta["global_step"] == 2  # the previous last.ckpt, whole

    resumed_logs = tmp_path / "resumed"  # scalars() reads <root>/runs: the resumed run's own logs
    resume = ("--ckpt_path", "last", "--trainer.logger.init_args.save_dir", str(resumed_logs / "runs"))
    proc = _run(tiny_args(run, shards, max_steps=4, extra=(*FSDP2, *EVERY_2, *resume)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = scalars(resumed_logs, CE)
    assert [s for s, _ in resumed] == [2, 3]
    assert resumed == scalars(straight, CE)[2:]  # bitwise
    # its own step-4 save replaced last.ckpt (a real sharded directory replacement)
    assert torch.load(ckpt / "last.ckpt" / "meta.pt", weights_only=False)["global_step"] == 4
    assert not list((ckpt / cp.STAGING).iterdir())  # this run's saves left nothing behind


def _fake_directory_save(tag: str, *, die: bool = False):
    def save(checkpoint, path, storage_options=None):  # what a sharded writer leaves on disk
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "__0_0.distcp").write_text(tag)
        if die:
            raise KeyboardInterrupt("killed mid-save")
        (Path(path) / ".metadata").write_text(tag)

    return save


def test_kill_between_the_two_renames_of_a_directory_replacement_is_recovered(tmp_path, monkeypatch):
    """A directory cannot be renamed over a full one: the old one is moved aside first. Killed right then,
    the checkpoint's name is missing for a moment; ``recover`` (run by ``fit`` before any lookup) puts the
    previous checkpoint back, and the staging leftovers are removed only after that."""
    from olmo2_lit.train.strategies import FSDP2Strategy, save_directory_atomically

    strategy = FSDP2Strategy()  # not set up: one process, rank 0, no-op barriers
    last = tmp_path / "last.ckpt"
    save_directory_atomically(strategy, _fake_directory_save("step2"), {}, last, None)
    with pytest.raises(KeyboardInterrupt):  # killed while writing: the previous one untouched
        save_directory_atomically(strategy, _fake_directory_save("step4", die=True), {}, last, None)
    assert (last / ".metadata").read_text() == (last / "__0_0.distcp").read_text() == "step2"

    renames = []

    def rename_then_die(src, dst):
        renames.append((src, dst))
        if len(renames) == 2:
            raise KeyboardInterrupt("killed between the renames")
        os.replace(src, dst)

    monkeypatch.setattr(cp.os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_directory_atomically(strategy, _fake_directory_save("step4"), {}, last, None)
    monkeypatch.undo()
    assert not last.exists()
    assert cp.remove_stale(tmp_path, min_age_s=0) == [tmp_path / cp.STAGING / "last.ckpt"]  # recovers first
    assert (last / ".metadata").read_text() == "step2"
    save_directory_atomically(strategy, _fake_directory_save("step6"), {}, last, None)
    assert (last / ".metadata").read_text() == "step6"
    assert sorted(p.name for p in tmp_path.iterdir()) == [cp.STAGING, "last.ckpt"]
    assert not list((tmp_path / cp.STAGING).iterdir())


KILLED_SAVE = """
import os, signal, sys
from olmo2_lit.train.checkpoint_io import AtomicCheckpointIO

class DieWhilePickled:  # SIGKILL in the middle of torch.save, the temp file half written
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)

AtomicCheckpointIO().save_checkpoint({"step": 2, "x": DieWhilePickled()}, sys.argv[1])
"""


def test_a_killed_hpc_save_is_not_taken_for_the_newest_preemption_checkpoint(tmp_path):
    """Lightning's SLURM resume takes the highest number in any name containing ``hpc_ckpt_`` in
    ``default_root_dir``; what a save killed midway leaves must not be one of them."""
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "hpc_ckpt_1.ckpt")
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(tmp_path / "hpc_ckpt_2.ckpt")], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    trainer = Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False)
    assert trainer._checkpoint_connector._hpc_resume_path == str(tmp_path / "hpc_ckpt_1.ckpt")
    assert torch.load(trainer._checkpoint_connector._hpc_resume_path)["step"] == 1
    leftovers = list((tmp_path / cp.STAGING).iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".hpc_ckpt_2.ckpt.")  # the killed save's


@pytest.mark.requires_cuda
@pytest.mark.parametrize("fragment", ["fsdp", "deepspeed_zero3"])
def test_cuda_engines_publish_their_checkpoint_directories_and_resume_from_them(shards, tmp_path, fragment):
    """FSDP v1 (``state_dict_type: sharded``) and DeepSpeed ZeRO-3 write their checkpoint directories
    through the staging directory too, and a run resumes from one (these engines run only on CUDA)."""
    if fragment.startswith("deepspeed"):
        pytest.importorskip("deepspeed")
    gpu = ("--config", str(STRATEGIES / f"{fragment}.yaml"), "--trainer.accelerator", "gpu",
           "--trainer.devices", "1", "--trainer.precision", "bf16-mixed")  # fmt: skip
    a = tmp_path / "a"
    proc = _run(tiny_args(a, shards, max_steps=4, extra=(*gpu, *EVERY_2)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = a / "ckpt"
    names = ["last.ckpt", "step0000002.ckpt", "step0000004.ckpt"]
    assert sorted(p.name for p in ckpt.iterdir()) == [cp.STAGING, *names]
    assert all((ckpt / n).is_dir() for n in names) and not list((ckpt / cp.STAGING).iterdir())
    b = tmp_path / "b"
    resume = ("--ckpt_path", str(ckpt / "step0000002.ckpt"))
    proc = _run(tiny_args(b, shards, max_steps=4, extra=(*gpu, *resume)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s for s, _ in scalars(b, CE)] == [2, 3]
