"""Two ranks on CPU (gloo DDP, subprocesses): an event that reaches ONE rank only, and every decision the
ranks must agree on. A decision taken on one rank only makes DDP ranks drift apart silently or hang in
the next collective; each test asserts both ranks decided the same at the same step, and that the run
ends (a timeout, not a speed requirement, turns a hang into a failure).

The events, injected by test callbacks (``one_rank_probes.py``): a loss spike in one rank's micro-batches
(its summed CE x1e3, so the loss it reports and the gradient it contributes both spike), a NaN born in one
rank's forward (its embedding output), and a signal sent to one rank's process mid-step.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from one_rank_probes import rank_logs, rank_weights
from training_helpers import fit_subprocess, load_weights, scalars, tiny_args

HERE = Path(__file__).parent
CALLBACKS = HERE.parent / "callbacks"
sys.path.insert(0, str(CALLBACKS))  # the stability tests' probes and rollback checks

from test_rollback import check_rollback  # noqa: E402

DDP = {"devices": 2, "strategy": "ddp"}
FSDP2 = {
    "devices": 2,
    "strategy": {
        "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
        "init_args": {
            "data_parallel_size": 2,
            "tensor_parallel_size": 1,
            "save_distributed_checkpoint": False,
        },
    },
}
# 2 ranks x micro 2 x accumulation 2 = the global batch of 8: a signal can land between micro-batches
MID_STEP = {"data": {"micro_batch_size": 2}}
HANG = 420  # seconds: a hang guard for a 2-process run on a shared 2-core machine


def _probe(name: str, **init_args) -> dict:
    return {"class_path": f"one_rank_probes.{name}", "init_args": init_args}


def _run(tmp_path: Path, shards: Path, max_steps: int, config: dict, *, check: bool = True):
    (tmp_path / "layer.yaml").write_text(yaml.safe_dump(config))
    args = tiny_args(tmp_path, shards, max_steps=max_steps, extra=("--config", str(tmp_path / "layer.yaml")))
    return fit_subprocess(args, tmp_path, pythonpath=(HERE, CALLBACKS), check=check, timeout=HANG)


def _same_on_both_ranks(tmp_path: Path) -> list[dict]:
    """The two ranks' per-step decisions, which must be equal; rank 0's."""
    zero, one = rank_logs(tmp_path)
    assert zero == one
    return zero["steps"]


@pytest.mark.slow
def test_spike_and_nan_on_one_rank_are_decided_on_both(shards, tmp_path):
    """A NaN in rank 0's forward at step 5 and a loss spike in rank 1's micro-batches at step 10: both
    ranks skip step 5 (non-finite guard), flag step 10 as a spike (SpikeMonitor), skip it (SkipStepAdamW),
    back the LR off (LRBackoff) and roll back to the step-9 checkpoint (Rollback), and end with bitwise
    equal weights, although rank 1's view of the checkpoint directory lags (step 9's file looks absent
    there: Rollback restores the checkpoint rank 0 chose). Guards against any of these decisions read from
    a rank-local loss, gradient or file listing."""
    callbacks = [
        {"class_path": "olmo2_lit.callbacks.spike_monitor.SpikeMonitor", "init_args": {"window": 8}},
        {
            "class_path": "olmo2_lit.callbacks.lr_backoff.LRBackoff",
            "init_args": {"spikes": 1, "window": 1, "duration": 2, "recovery": 0},
        },
        {"class_path": "olmo2_lit.callbacks.rollback.Rollback", "init_args": {"spikes": 1, "window": 6}},
        _probe("NaNEmbeddingOnRank", step=5, rank=0),
        _probe("ScaleLossOnRank", step=10, rank=1),
        _probe("LaggingCheckpointViewOnRank", rank=1, hidden="step0000009.ckpt"),
        {"class_path": "stability_probes.StepRecorder", "init_args": {"step": 10}},
        {
            "class_path": "stability_probes.RollbackRecorder",
            "init_args": {"checkpoint": str(tmp_path / "ckpt" / "step0000009.ckpt")},
        },
        _probe("RankLog"),
    ]
    optimizer = {
        "class_path": "olmo2_lit.train.skip_step.SkipStepAdamW",
        "init_args": {"lr": 1e-3, "rolling_interval_length": 16},
    }
    config = {
        "trainer": {"callbacks": callbacks, **DDP},
        "model": {"optimizer": optimizer},
        "nonfinite": {"action": "skip"},
    }
    _run(tmp_path, shards, 18, config)

    steps = _same_on_both_ranks(tmp_path)
    assert [s["step"] for s in steps] == [*range(11), *range(9, 18)]  # rolled back once, after step 10
    by_step = {s["step"]: s for s in steps[:11]}
    nan, spike = by_step[5], by_step[10]
    assert not nan["finite"] and (nan["skipped"], nan["skip_reason"], nan["nonfinite_skips"]) == (
        True, "nonfinite", 1,
    )  # fmt: skip
    assert [s["step"] for s in steps if s.get("spike")] == [10]
    assert (spike["skipped"], spike["skip_reason"]) == (True, "spike")
    assert (spike["lr_backoff_triggers"], spike["rollbacks"]) == (1, 1)
    assert spike["next_lr"] == pytest.approx(0.5 * by_step[9]["next_lr"], rel=0.2)  # backed off
    assert [s["step"] for s in steps if s["skipped"]] == [5, 10]
    for rank in range(2):  # the skipped spike left weights, moments and step counts as they were
        record = json.loads((tmp_path / f"step_record_rank{rank}.json").read_text())
        assert record["weights_unchanged"] and record["moments_unchanged"] and record["steps_unchanged"]
    check_rollback(tmp_path, ranks=2)  # both ranks restored step 9 and skipped the same data
    zero, one = rank_weights(tmp_path)
    assert zero.keys() == one.keys() and all(torch.equal(zero[k], one[k]) for k in zero)
    saved = load_weights(tmp_path / "ckpt" / "last.ckpt")
    assert all(torch.equal(saved[f"model.{k}"], v) for k, v in zero.items())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_nan_on_one_rank_stops_both_with_one_report(shards, tmp_path, strategy):
    """The non-finite guard's default (stop) with a NaN born in rank 1's forward at step 2, under DDP and
    FSDP2 (where the report's re-run forward is itself collective): both ranks stop at step 2 with
    FloatingPointError (no hang waiting for a peer), and rank 0's report holds both ranks, rank 1 naming
    the embedding as the first bad output and rank 0 none (its own forward was finite)."""
    callbacks = [_probe("NaNEmbeddingOnRank", step=2, rank=1), _probe("RankLog")]
    trainer = {"callbacks": callbacks, **(DDP if strategy == "ddp" else FSDP2)}
    proc = _run(tmp_path, shards, 4, {"trainer": trainer}, check=False)

    assert proc.returncode != 0 and "non-finite loss or gradient at step 2" in proc.stderr, proc.stderr[
        -3000:
    ]
    zero, one = rank_logs(tmp_path)
    assert zero["ends"] == one["ends"] == [{"how": "FloatingPointError", "global_step": 2}]
    report = json.loads((tmp_path / "nonfinite_step0000002.json").read_text())
    assert report["step"] == 2 and [r["rank"] for r in report["ranks"]] == [0, 1]
    rank0, rank1 = report["ranks"]
    assert rank1["nonfinite_activations"][0] == "embeddings" and rank0["nonfinite_activations"] == []
    assert rank0["n_nonfinite_grads"] > 0 and rank1["n_nonfinite_grads"] > 0  # the NaN reduced into both
    assert len({i["index"] for r in report["ranks"] for i in r["instances"]}) == 8  # the global batch
    assert not (tmp_path / "ckpt" / "last.ckpt").exists()  # nothing saved after the NaN


@pytest.mark.slow
def test_early_stopping_on_one_rank_s_held_out_spike_stops_both(shards, tmp_path):
    """Lightning's ``EarlyStopping`` on the held-out CE (``val/ce_loss``, validated every 2 optimizer
    steps), stopping when it diverges past 50, with rank 1's validation logits x1e3 in the validation
    after the 4th step (its held-out CE in the thousands, rank 0's about 5): both ranks see the same
    global value (the token-weighted mean synced over ranks), both stop there (4 steps, logged 0 to 3)
    with the same EarlyStopping state, and both hold the same weights. Early stopping is not the end of
    the fit: ``last.ckpt`` stays the periodic step 3. Guards against a held-out CE or a stop decision that
    is rank-local (the ranks drift, or one stops and the other waits in the next collective)."""
    early_stopping = {
        "class_path": "lightning.pytorch.callbacks.EarlyStopping",
        "init_args": {
            "monitor": "val/ce_loss",
            "divergence_threshold": 50.0,
            "patience": 100,  # only the divergence stops the run
            "check_on_train_epoch_end": False,
        },
    }
    callbacks = [early_stopping, _probe("ScaleValLogitsOnRank", step=4, rank=1), _probe("RankLog")]
    trainer = {"callbacks": callbacks, **DDP, "val_check_interval": 4, "limit_val_batches": 2}
    config = {"trainer": trainer, "data": {"micro_batch_size": 2, "val_paths": [str(shards)]}}
    _run(tmp_path, shards, 10, config)

    zero, one = rank_logs(tmp_path)
    assert zero == one, (zero["ends"], one["ends"])
    (end,) = zero["ends"]
    assert (end["how"], end["global_step"]) == ("end", 4)
    assert end["early_stopping"]["monitored"] > 50.0  # the global mean, rank 1's spike in it
    assert end["early_stopping"]["best_score"] < 10.0  # step 2's, before the spike
    assert [s["step"] for s in zero["steps"]] == [0, 1, 2, 3]
    held_out = scalars(tmp_path, "val/ce_loss")
    assert [step for step, _ in held_out] == [1, 3]  # after the 2nd and 4th steps, 0-based like the rest
    assert held_out[0][1] < 10.0 < 50.0 < held_out[1][1]
    assert (
        torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
        == 3
    )
    zero_w, one_w = rank_weights(tmp_path)
    assert all(torch.equal(zero_w[k], one_w[k]) for k in zero_w)


SIGNALLED = [(1, signal.SIGTERM), (0, signal.SIGINT), (1, signal.SIGUSR1)]


@pytest.mark.slow
@pytest.mark.parametrize(("rank", "signum"), SIGNALLED, ids=lambda v: getattr(v, "name", f"rank{v}"))
def test_signal_to_one_rank_stops_both_at_the_same_step(shards, tmp_path, rank, signum):
    """A pre-emption signal that reaches one rank's process only, mid-step 4 (SIGINT on rank 0 is not
    passed on to the other process, unlike SIGTERM and SIGUSR1; rank 1 passes nothing on): both ranks
    finish step 4, save it once, stop there with the signal's exit status, and hold the same weights as the
    checkpoint. Guards against a stop decided by the signalled rank alone (the other rank waits for it in
    the next collective: a hang) and a checkpoint of another step."""
    callbacks = [_probe("SignalOnRank", step=3, rank=rank, signum=signum.name), _probe("RankLog")]
    proc = _run(tmp_path, shards, 8, {"trainer": {"callbacks": callbacks, **DDP}, **MID_STEP}, check=False)

    assert proc.returncode == 128 + signum, proc.stderr[-3000:]
    saved = tmp_path / "ckpt" / "last.ckpt"
    told = signum.name if rank == 0 else f"{signum.name} on another rank"
    assert f"{told}: saved step 4 to {saved}" in proc.stderr
    assert torch.load(saved, map_location="cpu", weights_only=False)["global_step"] == 4
    zero, one = rank_logs(tmp_path)
    assert zero == one and zero["ends"] == [{"how": "SIGTERMException", "global_step": 4}]
    assert [s["step"] for s in zero["steps"]] == [0, 1, 2, 3]
    weights = load_weights(saved)
    for rank_weights_ in rank_weights(tmp_path):
        assert all(torch.equal(weights[f"model.{k}"], v) for k, v in rank_weights_.items())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_slurm_requeue_signal_to_one_task_requeues_once_from_both(shards, tmp_path):
    """Under SLURM (its environment for 2 tasks on one node, each task started by hand as srun would, a
    stub ``scontrol`` on PATH), SIGUSR1 reaching task 1 only, mid-step 4: both tasks finish step 4, save
    ``hpc_ckpt_1.ckpt`` at it together, rank 0 requeues the job once, and both stop there. Guards against a
    requeue decided by the signalled task alone (a hang, or a save the other rank never joins)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol_calls.txt"}\n')
    (bin_dir / "scontrol").chmod(0o755)
    callbacks = [_probe("SignalOnRank", step=3, rank=1, signum="SIGUSR1"), _probe("RankLog")]
    # gloo's own collective timeout, 30 min by default, cut to 60 s: a task left alone in a collective
    # (the save's barrier, the next step's all-reduce) raises within a minute instead of hanging until
    # HANG. Both tasks start together here and wait for each other at most a step of the tiny model, so
    # a healthy run never comes near it.
    ddp = {
        "devices": 2,
        "strategy": {
            "class_path": "lightning.pytorch.strategies.DDPStrategy",
            "init_args": {"timeout": "0:01:00"},
        },
    }
    (tmp_path / "layer.yaml").write_text(
        yaml.safe_dump({"trainer": {"callbacks": callbacks, **ddp}, **MID_STEP})
    )
    args = tiny_args(tmp_path, shards, max_steps=8, extra=("--config", str(tmp_path / "layer.yaml")))
    env = {
        **os.environ,
        "SLURM_JOB_ID": "4243",
        "SLURM_JOB_NAME": "olmo2",  # not "bash"/"interactive", so SLURMEnvironment is detected
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(CALLBACKS), os.environ.get("PYTHONPATH", "")]),
    }
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "olmo2_lit", "fit", *args],
            cwd=tmp_path,
            env={**env, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        errs = [task.communicate(timeout=HANG)[1] for task in tasks]
    finally:
        for task in tasks:
            if task.poll() is None:
                task.kill()
    assert [task.returncode for task in tasks] == [0, 0], "\n".join(e[-2000:] for e in errs)
    assert (tmp_path / "scontrol_calls.txt").read_text().split() == ["requeue", "4243"]  # once, by rank 0
    assert (
        torch.load(tmp_path / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)["global_step"] == 4
    )
    zero, one = rank_logs(tmp_path)
    assert zero == one and zero["ends"] == [{"how": "end", "global_step": 4}]
    assert [s["step"] for s in zero["steps"]] == [0, 1, 2, 3]
