"""The final step of a fit is saved (``callbacks/checkpoint.py``), whatever the interval, under every strategy
the CPU tests run.

Guards against a fit whose last steps after the last periodic checkpoint are trained, logged and lost
(Lightning saved ``last.ckpt`` at the end only if nothing was saved at all), a final save that duplicates
the periodic one when the last step is on the interval, a final save that bypasses the strategy (a
sharded directory written by one rank, or in place instead of through the staging directory), and a
final checkpoint that does not resume exactly.
"""

from pathlib import Path

import pytest
import torch
from training_helpers import fit, fit_subprocess, load_weights, scalars, tiny_args

from olmo2_lit.callbacks.checkpoint import StepCheckpoint
from olmo2_lit.train.checkpoint_kind import checkpoint_kind
from olmo2_lit.train.checkpoint_publish import STAGING
from olmo2_lit.weights.consolidate import load_sharded
from olmo2_lit.weights.deepspeed_state import load_deepspeed

TRAINING = Path(__file__).resolve().parents[1] / "training"
STRATEGIES = Path(__file__).resolve().parents[2] / "experiments" / "strategies"
EVERY = 2


def every(n: int = EVERY) -> tuple[str, ...]:
    return ("--checkpoint.every_n_train_steps", str(n))


def saved_step(path: Path) -> int:
    """The ``global_step`` stored in a checkpoint of any kind (file, distributed or DeepSpeed directory)."""
    kind = checkpoint_kind(path)
    if kind == "file":
        return torch.load(path, map_location="cpu", weights_only=False)["global_step"]
    load = load_sharded if kind == "distributed" else load_deepspeed
    return load(path, with_optimizer=False)["global_step"]


@pytest.fixture
def saves(monkeypatch):
    """Every save the checkpoint callback makes, as (global step, file name)."""
    record = []
    original = StepCheckpoint._save_checkpoint

    def recording(self, trainer, filepath):
        record.append((trainer.global_step, Path(filepath).name))
        original(self, trainer, filepath)

    monkeypatch.setattr(StepCheckpoint, "_save_checkpoint", recording)
    return record


@pytest.mark.parametrize("max_steps", [2 * EVERY - 1, 2 * EVERY, 2 * EVERY + 1])
def test_the_last_step_is_saved_once_whatever_the_interval(shards, tmp_path, saves, max_steps):
    fit(tiny_args(tmp_path, shards, max_steps=max_steps, extra=every()))
    expected = sorted({*range(EVERY, max_steps + 1, EVERY), max_steps})  # the interval, then the end
    files = [(s, f"step{s:07d}.ckpt") for s in expected]
    assert saves == [save for s, name in files for save in ((s, name), (s, "last.ckpt"))]  # no save twice
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == sorted([n for _, n in files] + ["last.ckpt"])
    assert saved_step(ckpt / "last.ckpt") == saved_step(ckpt / f"step{max_steps:07d}.ckpt") == max_steps
    assert len(scalars(tmp_path, "train/ce_loss")) == max_steps  # every step trained is in last.ckpt


def test_a_fit_ended_by_max_epochs_saves_its_last_step(shards, tmp_path, saves):
    # no max_steps: an epoch of 6 micro-batches (3 optimizer steps of 2) ends the fit, off the interval
    epoch = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6")
    fit(tiny_args(tmp_path, shards, max_steps=-1, extra=(*every(), *epoch)))
    assert saves == [(2, "step0000002.ckpt"), (2, "last.ckpt"), (3, "step0000003.ckpt"), (3, "last.ckpt")]
    assert saved_step(tmp_path / "ckpt" / "last.ckpt") == 3


def test_resuming_the_final_checkpoint_with_more_steps_continues_exactly(shards, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    fit(tiny_args(straight, shards, max_steps=2 * EVERY + 2, extra=every()))
    fit(tiny_args(stopped, shards, max_steps=2 * EVERY + 1, extra=every()))  # ends off the interval
    last = stopped / "ckpt" / "last.ckpt"
    fit(tiny_args(stopped, shards, max_steps=2 * EVERY + 2, extra=(*every(), "--ckpt_path", str(last))))
    assert scalars(stopped, "train/ce_loss") == scalars(straight, "train/ce_loss")  # every step, bitwise
    wa, wb = load_weights(straight / "ckpt" / "last.ckpt"), load_weights(last)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_resume_from_a_step_on_the_interval_does_not_save_that_step_again(shards, tmp_path):
    """Resumed from ``step0000004.ckpt`` (every 2 steps, 2 micro-batches per step): the first micro-batch
    ends with the step counter still at 4, on the interval, and Lightning (which does not save which step
    it last wrote) saved step 4 again there: the file the run resumed from, and ``last.ckpt``, rewritten
    with the data position one micro-batch into step 5 and that micro-batch's gradient lost, so a later
    resume from either skipped data. Now nothing is saved before the resumed run's first step: the file
    is left as it was, and a second resume from it trains exactly what the first did."""
    fit(tiny_args(tmp_path, shards, max_steps=4, extra=every()))
    resumed_from = tmp_path / "ckpt" / "step0000004.ckpt"
    before = resumed_from.read_bytes()
    again = tmp_path / "again"
    fit(tiny_args(tmp_path, shards, max_steps=6, extra=(*every(), "--ckpt_path", str(resumed_from))))
    assert resumed_from.read_bytes() == before
    state = torch.load(resumed_from, map_location="cpu", weights_only=False)
    assert state["global_step"] == 4 and state["TokenShardDataModule"]["tokens"] == 4 * 8 * 64
    fit(tiny_args(again, shards, max_steps=6, extra=(*every(), "--ckpt_path", str(resumed_from))))
    assert scalars(again, "train/ce_loss") == [s for s in scalars(tmp_path, "train/ce_loss") if s[0] >= 4]


# (fragment or strategy flags, the script that runs fit, extra environment); fp32 where it has a choice
MULTI_RANK = {
    "ddp": (("--config", str(STRATEGIES / "ddp.yaml")), None, {}),
    "fsdp2": (
        ("--config", str(STRATEGIES / "fsdp2.yaml"), "--model.parallelize.fsdp_param_dtype", "null"),
        None,
        {},
    ),
    "fsdp_v1": (
        ("--config", str(STRATEGIES / "fsdp.yaml"), "--trainer.strategy.init_args.param_dtype", "float32"),
        TRAINING / "cpu_fsdp.py",
        {},
    ),
    "deepspeed": (
        ("--config", str(STRATEGIES / "deepspeed_zero2.yaml")),
        TRAINING / "cpu_deepspeed.py",
        {"DS_ACCELERATOR": "cpu"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(MULTI_RANK))
def test_two_ranks_save_the_final_step_through_the_strategy(shards, tmp_path, strategy):
    if strategy == "deepspeed":
        pytest.importorskip("deepspeed", reason="pip install deepspeed (olmo2_lit[deepspeed]) to run it")
    flags, script, env = MULTI_RANK[strategy]
    run = tmp_path / "run"
    args = tiny_args(run, shards, max_steps=EVERY + 1, extra=(*flags, "--trainer.devices", "2", *every()))
    fit_subprocess(args, tmp_path, pythonpath=(TRAINING,), script=script, env={"OMP_NUM_THREADS": "1", **env})
    ckpt = run / "ckpt"
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == [
        "last.ckpt",
        "step0000002.ckpt",
        "step0000003.ckpt",
    ]
    assert saved_step(ckpt / "step0000002.ckpt") == 2
    assert saved_step(ckpt / "step0000003.ckpt") == saved_step(ckpt / "last.ckpt") == EVERY + 1
    assert not list((ckpt / STAGING).iterdir())  # published through the staging directory, nothing left
