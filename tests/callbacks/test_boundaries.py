"""Every window, threshold and interval of the callbacks at its boundary k and the neighbours k-1, k+1,
driven directly with step records (no fit; the interval checks that live in Lightning's loop are covered
by the tiny fits listed in docs/testing.md, "Boundaries we test").

The trainer and module the callbacks are handed here are plain objects with the few attributes each
callback reads (its docstring's contract): a real optimizer for the LR, a real ``ModelCheckpoint`` for the
interval, files on disk for the checkpoints, and a recorder of what is logged. Expectations are computed in
each test from the documented rule (docs/stability.md), with small numbers.

Guards against a spike window one step too long or short, a backoff that lasts a step more or less than
``duration`` or ramps back wrongly, a rollback to a checkpoint that already holds the spiked update (or
that skips a good one at the spike's own step), one rollback or skip more or fewer than allowed, a merge
window or merge step off by one (or a resume inside a window that merges a partial average), a throughput
rate over the wrong number of steps, and an in-loop eval at the wrong steps or twice at one.
"""

import io
import json
import os
import signal
import types
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors.torch import load_file
from tqdm import tqdm

from olmo2_lit.callbacks import throughput as throughput_module
from olmo2_lit.callbacks.diagnostics import Diagnostics
from olmo2_lit.callbacks.downstream_eval import DownstreamEval
from olmo2_lit.callbacks.housekeeping import Housekeeping
from olmo2_lit.callbacks.lr_backoff import LRBackoff
from olmo2_lit.callbacks.nonfinite_guard import NonFiniteGuard
from olmo2_lit.callbacks.preemption import Preemption
from olmo2_lit.callbacks.progress import StepProgressBar
from olmo2_lit.callbacks.rollback import Rollback
from olmo2_lit.callbacks.spike_monitor import SpikeDecision, SpikeMonitor
from olmo2_lit.callbacks.throughput import TokenThroughput
from olmo2_lit.callbacks.weight_averaging import ModelMerger
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train import metrics as M
from olmo2_lit.train.step_record import StepRecord


def record(step: int, *, loss: float = 2.0, grad_norm: float = 1.0, tokens: int = 0, ids=()) -> StepRecord:
    return StepRecord(
        step=step,
        tokens_seen=tokens,
        loss=loss,
        z_loss=0.0,
        grad_norm=grad_norm,
        lr=1.0,
        finite=True,
        skipped=False,
        skip_reason=None,
        instance_ids=torch.tensor(list(ids), dtype=torch.long),
    )


class Module(torch.nn.Module):
    """What the callbacks read of the LightningModule: ``log``, ``model``, train/eval mode."""

    def __init__(self, model=None) -> None:
        super().__init__()
        self.model = model if model is not None else torch.nn.Linear(2, 2)
        self.logged: list[tuple[str, float]] = []

    def log(self, name, value, **kwargs) -> None:
        self.logged.append((name, value))

    def values(self, name: str) -> list[float]:
        return [v for n, v in self.logged if n == name]


def trainer(**kw) -> types.SimpleNamespace:
    defaults = dict(
        callbacks=[], global_rank=0, world_size=1, is_global_zero=True, loggers=[], should_stop=False
    )
    return types.SimpleNamespace(**{**defaults, **kw})


def decided(monitor: SpikeMonitor, step: int, spike: bool) -> None:
    """The monitor's decision for ``step``, as its ``on_step`` leaves it for the interventions."""
    monitor.decision = SpikeDecision(
        step=step, spike=spike, loss_spike=spike, grad_norm_spike=False, loss=2.0, grad_norm=1.0
    )


# --- SpikeMonitor: when its rates are logged ---------------------------------------------------------
@pytest.mark.parametrize(("steps", "recent", "total", "paper"), [(3, 0, 0, 0), (4, 1, 1, 0), (5, 2, 2, 1)])
def test_the_monitor_logs_each_rate_once_its_window_is_full(steps, recent, total, paper):
    """window 4 and rate window 4: both rates from the 4th step on; the paper's score (window 4) from the
    5th value, the first with 4 values behind it. Every step logs the spike flags."""
    monitor = SpikeMonitor(window=4, sigma=6.0, rate_window=4, paper_window=4, paper_sigma=7.0)
    module = Module()
    for step in range(steps):
        monitor.on_step(trainer(), module, record(step, loss=1.0 + 2.0 * (step % 2)))
    assert len(module.values(M.SPIKE)) == steps
    assert len(module.values(M.SPIKE_RATE_RECENT)) == recent
    assert len(module.values(M.SPIKE_RATE_TOTAL)) == total
    assert len(module.values(M.SPIKE_PAPER_SCORE_LOSS)) == paper


# --- LRBackoff ---------------------------------------------------------------------------------------
def backoff_run(spike_steps, *, steps: int, **kwargs) -> tuple[LRBackoff, list[float]]:
    """Run ``steps`` optimizer steps (numbered from 1) with spikes at ``spike_steps``; returns the callback
    and the LR multiplier each step ran at (the scheduler sets LR 1 before every step)."""
    monitor, backoff = SpikeMonitor(), LRBackoff(**kwargs)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    t = trainer(callbacks=[monitor, backoff], optimizers=[opt])
    backoff.setup(t, Module(), "fit")
    module, ran_at = Module(), []
    for step in range(1, steps + 1):
        ran_at.append(opt.param_groups[0]["lr"])
        decided(monitor, step - 1, step in spike_steps)
        opt.param_groups[0]["lr"] = 1.0  # the scheduler's LR for the next step
        backoff.on_step(t, module, record(step - 1))
    assert module.values(M.LR_BACKOFF) == ran_at  # it logs what each step ran at
    return backoff, ran_at


@pytest.mark.parametrize(("gap", "triggered"), [(2, True), (3, True), (4, False)])
def test_two_spikes_trigger_a_backoff_only_within_window_steps(gap, triggered):
    """window 4: spikes at steps 1 and 1 + gap fall within 4 steps iff gap <= 3."""
    backoff, _ = backoff_run({1, 1 + gap}, steps=8, spikes=2, window=4, duration=2, recovery=0)
    assert backoff.triggers == int(triggered)


@pytest.mark.parametrize(("n_spikes", "triggers"), [(2, 0), (3, 1), (4, 1)])
def test_a_backoff_needs_spikes_spikes(n_spikes, triggers):
    """spikes 3 within a window of 10: two are not enough, the third triggers, a fourth right after is
    the first of a new count (the count restarts at a trigger)."""
    backoff, _ = backoff_run(
        set(range(1, n_spikes + 1)), steps=6, spikes=3, window=10, duration=1, recovery=0
    )
    assert backoff.triggers == triggers


@pytest.mark.parametrize(
    ("duration", "recovery", "expected"),
    [
        # triggered by the spike at step 2: steps 3.. run at 0.5 for `duration` steps, then the ramp
        # 0.5 + 0.5 * j / (recovery + 1), j = 1..recovery, then the schedule's LR
        (2, 0, [1, 1, 0.5, 0.5, 1, 1, 1, 1]),
        (3, 0, [1, 1, 0.5, 0.5, 0.5, 1, 1, 1]),
        (4, 0, [1, 1, 0.5, 0.5, 0.5, 0.5, 1, 1]),
        (3, 1, [1, 1, 0.5, 0.5, 0.5, 0.75, 1, 1]),
        (2, 3, [1, 1, 0.5, 0.5, 0.625, 0.75, 0.875, 1]),
    ],
)
def test_the_backoff_lasts_duration_steps_then_ramps_over_recovery(duration, recovery, expected):
    _, ran_at = backoff_run(
        {2}, steps=8, spikes=1, window=1, factor=0.5, duration=duration, recovery=recovery
    )
    assert ran_at == pytest.approx(expected)


def test_a_trigger_during_a_backoff_restarts_it():
    """duration 3: spikes at 2 and 4 -> steps 3, 4 at 0.5, then 5, 6, 7 at 0.5 again, 8 back at 1."""
    backoff, ran_at = backoff_run({2, 4}, steps=8, spikes=1, window=1, factor=0.5, duration=3, recovery=0)
    assert ran_at == [1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 1]
    assert backoff.triggers == 2


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({"spikes": 0, "window": 4}, False),
        ({"spikes": 1, "window": 4}, True),
        ({"spikes": 4, "window": 4}, True),
        ({"spikes": 5, "window": 4}, False),
        ({"duration": 0}, False),
        ({"duration": 1}, True),
        ({"recovery": -1}, False),
        ({"recovery": 0}, True),
    ],
)
def test_backoff_arguments_at_their_limits(kwargs, ok):
    if ok:
        LRBackoff(**kwargs)
    else:
        with pytest.raises(ValueError, match="LRBackoff: need"):
            LRBackoff(**kwargs)


# --- Rollback ----------------------------------------------------------------------------------------
class Data:
    """The datamodule's part of the contract Rollback uses: the token counter and where an instance is."""

    tokens_seen = 1000

    @staticmethod
    def instance_location(i: int) -> tuple[str, int]:
        return f"part-{i % 2}.npy", 64 * i


def rollback_run(tmp_path, spike_steps, *, checkpoints, steps: int, rollbacks: int = 0, **kwargs):
    """Steps 0..steps-1 (as logged) with spikes at ``spike_steps``; checkpoints (global step -> file) exist.
    Returns the callback and the trainer (``should_stop`` tells whether it rolled back)."""
    monitor, rollback = SpikeMonitor(), Rollback(**kwargs)
    t = trainer(
        callbacks=[monitor, rollback],
        checkpoint_callback=ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1),
        datamodule=Data(),
        default_root_dir=str(tmp_path),
    )
    rollback.setup(t, types.SimpleNamespace(adapter=types.SimpleNamespace(refits_in_process=True)), "fit")
    files = []
    for g in checkpoints:
        path = tmp_path / f"step{g:07d}.ckpt"
        path.write_bytes(b"")
        files.append((g, str(path)))
    rollback.load_state_dict({"spike_steps": [], "checkpoints": files, "rollbacks": rollbacks})
    module = Module()
    for step in range(steps):
        decided(monitor, step, step in spike_steps)
        rollback.on_step(t, module, record(step, ids=(2 * step, 2 * step + 1)))
        if t.should_stop:
            break
    return rollback, t


@pytest.mark.parametrize(("gap", "rolled_back"), [(2, True), (3, True), (4, False)])
def test_two_spikes_roll_back_only_within_window_steps(tmp_path, gap, rolled_back):
    """window 4, spikes 2: steps 5 and 5 + gap are within 4 steps iff gap <= 3."""
    rollback, t = rollback_run(tmp_path, {5, 5 + gap}, checkpoints=[4], steps=12, spikes=2, window=4)
    assert t.should_stop is rolled_back
    assert rollback.rollbacks == int(rolled_back)


@pytest.mark.parametrize(("saved_at", "restored"), [(5, 5), (6, 6), (7, None)])
def test_the_checkpoint_at_the_spike_step_is_still_good(tmp_path, saved_at, restored):
    """A checkpoint at global step g holds the weights after g steps, before step g's update. A spike at
    step 6 (as logged): a checkpoint at 5 or 6 is good, one at 7 holds the spiked update and is not used
    (no checkpoint left: a warning, no rollback)."""
    if restored is None:
        with pytest.warns(UserWarning, match=r"spikes at steps \[6\] but no checkpoint at or before step 6"):
            rollback, t = rollback_run(tmp_path, {6}, checkpoints=[saved_at], steps=8, spikes=1, window=4)
        assert not t.should_stop and rollback.restart_from() is None
        return
    rollback, t = rollback_run(tmp_path, {6}, checkpoints=[saved_at], steps=8, spikes=1, window=4)
    assert t.should_stop
    assert rollback.restart_from() == str(tmp_path / f"step{restored:07d}.ckpt")
    (entry,) = json.loads((tmp_path / "rollbacks.json").read_text())["rollbacks"]
    assert (entry["at_step"], entry["spike_steps"], entry["restored_step"]) == (6, [6], restored)
    # the steps from the checkpoint's on are skipped: 5, 6 from a checkpoint at 5; 6 alone from one at 6
    assert [s["step"] for s in entry["skipped"]] == list(range(restored, 7))
    assert [i["index"] for i in entry["skipped"][-1]["instances"]] == [12, 13]


@pytest.mark.parametrize(("before", "raises"), [(1, False), (2, True)])
def test_the_run_stops_after_max_rollbacks(tmp_path, before, raises):
    """max_rollbacks 2: a second rollback is allowed, a third is an error."""
    if raises:
        with pytest.raises(RuntimeError, match="Rollback: 2 rollbacks already"):
            rollback_run(
                tmp_path, {3}, checkpoints=[2], steps=5, rollbacks=before, spikes=1, window=2, max_rollbacks=2
            )
    else:
        rollback, _ = rollback_run(
            tmp_path, {3}, checkpoints=[2], steps=5, rollbacks=before, spikes=1, window=2, max_rollbacks=2
        )
        assert rollback.rollbacks == 2


@pytest.mark.parametrize(("every", "ok"), [(3, True), (4, True), (5, False)])
def test_the_checkpoint_interval_may_be_as_long_as_the_window(tmp_path, every, ok):
    """window 4: a checkpoint every 4 steps always has one within the window; every 5 may not."""
    rollback = Rollback(spikes=1, window=4)
    t = trainer(
        callbacks=[SpikeMonitor(), rollback], checkpoint_callback=ModelCheckpoint(every_n_train_steps=every)
    )
    module = types.SimpleNamespace(adapter=types.SimpleNamespace(refits_in_process=True))
    if ok:
        rollback.setup(t, module, "fit")
    else:
        with pytest.raises(
            ValueError, match=r"every_n_train_steps \(5\) is longer than Rollback's window \(4\)"
        ):
            rollback.setup(t, module, "fit")


@pytest.mark.parametrize(("kwargs", "ok"), [({"max_rollbacks": 0}, False), ({"max_rollbacks": 1}, True)])
def test_max_rollbacks_at_its_limit(kwargs, ok):
    if ok:
        Rollback(**kwargs)
    else:
        with pytest.raises(ValueError, match="max_rollbacks must be >= 1"):
            Rollback(**kwargs)


# --- NonFiniteGuard ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_skips", "skipped_before", "stops"), [(2, 0, False), (2, 1, False), (2, 2, True)]
)
def test_skip_stops_once_max_skips_steps_were_skipped(tmp_path, max_skips, skipped_before, stops):
    """max_skips 2: the first and second non-finite steps are skipped (also across a resume, the count is
    in the state), the third stops the run with its report."""
    guard = NonFiniteGuard(action="skip", max_skips=max_skips)
    guard.load_state_dict({"skips": skipped_before})
    module = Module()
    module.model.weight.grad = torch.full((2, 2), float("nan"))
    t = trainer(datamodule=Data(), default_root_dir=str(tmp_path))
    if stops:
        with pytest.raises(FloatingPointError, match="non-finite loss or gradient at step 7"):
            guard.on_nonfinite_step(t, module, record(7))
        assert (tmp_path / "nonfinite_step0000007.json").exists()
    else:
        with pytest.warns(UserWarning, match="step 7; step skipped"):
            guard.on_nonfinite_step(t, module, record(7))
        assert guard.skips == skipped_before + 1 and module.model.weight.grad is None


@pytest.mark.parametrize(("max_skips", "ok"), [(0, False), (1, True)])
def test_max_skips_at_its_limit(max_skips, ok):
    if ok:
        NonFiniteGuard(action="skip", max_skips=max_skips)
    else:
        with pytest.raises(ValueError, match="max_skips must be >= 1"):
            NonFiniteGuard(action="skip", max_skips=max_skips)


# --- ModelMerger -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("max_steps", "merges"), [(11, [4, 8]), (12, [4, 8, 12]), (13, [4, 8, 12])])
def test_every_n_steps_merges_at_each_multiple_up_to_max_steps(max_steps, merges):
    merger = ModelMerger(every_n_steps=4, last_n_steps=2)
    merger.on_train_start(trainer(max_steps=max_steps, global_step=0), Module())
    assert merger.merge_steps == merges


@pytest.mark.parametrize(("last_n", "merges"), [(3, [4, 8]), (4, [4, 8]), (5, [8])])
def test_no_merge_window_reaches_before_the_first_step(last_n, merges):
    """every 4: a window of 5 steps ending at step 4 would start at step 0, so the first merge is at 8."""
    merger = ModelMerger(every_n_steps=4, last_n_steps=last_n)
    merger.on_train_start(trainer(max_steps=8, global_step=0), Module())
    assert merger.merge_steps == merges


@pytest.mark.parametrize(("merge_step", "ok"), [(2, False), (3, True), (4, True)])
def test_a_merge_step_needs_a_whole_window(merge_step, ok):
    if ok:
        ModelMerger(merge_steps=[merge_step], last_n_steps=3)
    else:
        with pytest.raises(ValueError, match=r"must be >= last_n_steps \(3\)"):
            ModelMerger(merge_steps=[merge_step], last_n_steps=3)


TINY = ModelConfig(d_model=8, n_layers=1, n_heads=2, mlp_hidden=16, vocab_size=16, max_sequence_length=8)


@pytest.mark.parametrize(
    ("resumed_at", "merged", "warned"),
    [(6, 9.0, False), (7, 9.0, False), (8, None, True), (9, None, True), (10, None, False)],
)
def test_a_run_resumed_inside_the_window_skips_that_merge(tmp_path, resumed_at, merged, warned):
    """merge at 10 over the last 3 steps: the window is the weights after steps 8, 9, 10. A run resumed
    after 6 or 7 steps still sees all three (their mean: 9 when the weights after step s are all s); after
    8 or 9 it would average a part, so it skips the merge with a warning; after 10 the merge is past."""
    merger = ModelMerger(merge_steps=[10], last_n_steps=3, dirpath=str(tmp_path))
    module = Module(Transformer(TINY))
    t = trainer(max_steps=12, global_step=resumed_at, strategy=types.SimpleNamespace(barrier=lambda: None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merger.on_train_start(t, module)
    assert any("inside the window 8..10" in str(w.message) for w in caught) is warned
    for step in range(resumed_at, 12):  # record.step: the step's index; step + 1 steps done after it
        with torch.no_grad():
            for p in module.model.parameters():
                p.fill_(step + 1)
        merger.on_step(t, module, record(step))
    out = tmp_path / "step0000010-merged"
    assert out.exists() is (merged is not None)
    if merged is not None:
        weights = load_file(out / "model.safetensors")
        assert all(torch.all(w == merged) for w in weights.values())


# --- TokenThroughput ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("steps", "first"), [(3, 1), (4, 1), (5, 2)])
def test_the_rate_is_over_the_last_window_steps(monkeypatch, steps, first):
    """window 3, 100 tokens per step, step k ending at k * k seconds: after step 3 the rate is over steps
    1..3 (200 tokens in 8 s), after 4 over 1..4 (300 in 15 s), after 5 over 2..5 (300 in 21 s)."""
    ends = iter(float(k * k) for k in range(1, 10))
    monkeypatch.setattr(throughput_module, "time", types.SimpleNamespace(perf_counter=lambda: next(ends)))
    callback, module = TokenThroughput(window=3), Module()
    for k in range(1, steps + 1):
        callback.on_step(trainer(global_step=k), module, record(k - 1, tokens=100 * k))
    rates = module.values(M.TOKENS_PER_SEC)
    assert len(rates) == steps - 1  # none after the first step
    assert rates[-1] == pytest.approx(100 * (steps - first) / (steps * steps - first * first))


@pytest.mark.parametrize(("window", "ok"), [(0, False), (1, True)])
def test_throughput_window_at_its_limit(window, ok):
    if ok:
        TokenThroughput(window=window)
    else:
        with pytest.raises(ValueError, match="throughput.window must be >= 1"):
            TokenThroughput(window=window)


# --- DownstreamEval ----------------------------------------------------------------------------------
def test_downstream_eval_runs_at_each_multiple_once_and_never_at_step_0():
    """every 3 steps, 2 micro-batches per step (the first sees the previous step's count): it evaluates
    after steps 3 and 6 only, once each; not at 0, 2, 4, 5 or 7."""
    callback = DownstreamEval(
        tasks=[], every_n_steps=3
    )  # no tasks: evaluate() scores nothing, records the step
    module = Module()
    for step in range(1, 8):
        for global_step in (step - 1, step):  # micro-batch 1, then 2 (after the optimizer step)
            callback.on_train_batch_end(trainer(global_step=global_step), module, None, None, 0)
    assert sorted(callback.results) == [3, 6]


@pytest.mark.parametrize(("every", "ok"), [(0, False), (1, True)])
def test_downstream_eval_interval_at_its_limit(every, ok):
    if ok:
        DownstreamEval(tasks=[], every_n_steps=every)
    else:
        with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
            DownstreamEval(tasks=[], every_n_steps=every)


# --- Housekeeping ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("global_step", "age", "removed"),
    [(0, 0.5, True), (0, 0.99, True), (0, 1.01, False), (0, 2.0, False), (1, 0.5, False)],
)
def test_only_a_log_dir_written_by_a_run_that_failed_before_its_first_step_is_removed(
    tmp_path, global_step, age, removed
):
    """The log directory is removed iff the run failed at step 0 and every file in it is the run's own
    (written no earlier than 1 s before the callback was made); a file older than that is kept, with the
    rest."""
    callback = Housekeeping()
    log_dir = tmp_path / "version_0"
    log_dir.mkdir()
    config = log_dir / "config.yaml"
    config.write_text("x: 1\n")
    os.utime(config, (callback._started - age, callback._started - age))
    t = trainer(global_step=global_step, logger=types.SimpleNamespace(log_dir=str(log_dir)))
    callback.on_exception(t, Module(), RuntimeError("boom"))
    assert log_dir.exists() is (not removed)


# --- StepProgressBar, Diagnostics, Preemption ------------------------------------------------------------
@pytest.mark.parametrize(("step", "shown"), [(2, 0), (3, 3), (4, 3), (5, 3), (6, 6)])
def test_the_progress_bar_moves_every_refresh_rate_optimizer_steps(step, shown):
    """refresh_rate 3: the bar shows step 3 from step 3 to 5, then 6."""
    bar = StepProgressBar(refresh_rate=3)
    bar.train_progress_bar = tqdm(total=10, file=io.StringIO())
    for global_step in range(1, step + 1):
        t = trainer(global_step=global_step, progress_bar_metrics={"train/ce_loss": global_step + 0.5})
        bar.on_train_batch_end(t, None, None, None, 0)
    assert bar.train_progress_bar.n == shown
    assert (bar.train_progress_bar.postfix or "") == (f"train/ce_loss={shown + 0.5}" if shown else "")


@pytest.mark.parametrize(("interval", "ok"), [(0, False), (1, True)])
def test_diagnostics_interval_at_its_limit(interval, ok):
    """The interval itself (logged at steps 0, 3, not 1, 2, 4, 5 for interval 3) is checked in a tiny fit,
    tests/callbacks/test_diagnostics.py."""
    if ok:
        Diagnostics(interval=interval)
    else:
        with pytest.raises(ValueError, match="interval must be >= 1"):
            Diagnostics(interval=interval)


@pytest.mark.parametrize(
    ("signals", "aborts"),
    [
        ((signal.SIGINT,), False),  # finish the step, save, exit
        ((signal.SIGINT, signal.SIGINT), True),  # the second Ctrl+C aborts at once
        ((signal.SIGTERM, signal.SIGINT), True),
        ((signal.SIGTERM, signal.SIGTERM), False),  # only Ctrl+C aborts
    ],
)
def test_the_second_ctrl_c_aborts(signals, aborts):
    preemption = Preemption()
    *first, last = signals
    for signum in first:
        preemption._handle(signum, None)
    if aborts:
        with pytest.raises(KeyboardInterrupt):
            preemption._handle(last, None)
    else:
        preemption._handle(last, None)
        assert preemption.signum == signals[0]  # the first signal names the exit status
        assert preemption.exit_status == 128 + int(signals[0])


# --- a spike at the step that is also a periodic checkpoint (a tiny fit) -------------------------------
@pytest.mark.slow
def test_a_spike_at_a_checkpoint_step_is_not_saved_and_rolls_back_to_the_one_before(
    shards, tmp_path, monkeypatch
):
    """Checkpoints every 5 steps, a grad-norm spike at step 9 (as logged), the 10th and last update: the
    checkpoint due after it (step 10, also the final one) would hold the spiked weights, so nothing is
    saved then; the run rolls back to step 5, skips the data of steps 5..9 and saves step 10 once, after
    the redone steps."""
    from stability_config import MONITOR, layer, probe
    from training_helpers import fit, tiny_args

    from olmo2_lit.callbacks.checkpoint import StepCheckpoint

    saves = []
    original = StepCheckpoint._save_checkpoint

    def recording(self, trainer, filepath):
        saves.append((trainer.global_step, Path(filepath).name))
        original(self, trainer, filepath)

    monkeypatch.setattr(StepCheckpoint, "_save_checkpoint", recording)
    callbacks = [
        MONITOR,
        {"class_path": "olmo2_lit.callbacks.rollback.Rollback", "init_args": {"spikes": 1, "window": 6}},
        probe("ScaleGradsAt", steps=[9]),
    ]
    extra = (*layer(tmp_path / "rollback.yaml", callbacks), "--checkpoint.every_n_train_steps", "5")
    fit(tiny_args(tmp_path, shards, max_steps=10, extra=extra))
    assert saves == [
        (5, "step0000005.ckpt"),
        (5, "last.ckpt"),
        (10, "step0000010.ckpt"),  # after the restart only
        (10, "last.ckpt"),
    ]
    (entry,) = json.loads((tmp_path / "rollbacks.json").read_text())["rollbacks"]
    assert (entry["at_step"], entry["restored_step"]) == (9, 5)
    assert [s["step"] for s in entry["skipped"]] == [5, 6, 7, 8, 9]


def test_a_backoff_scales_every_parameter_group():
    """Three groups scheduled at their own LRs (e.g. an lr_scale group and the no-decay embedding group):
    a backoff multiplies each group's LR by the factor, and the next step after it runs at the schedule's
    LR in every group again."""
    monitor, backoff = SpikeMonitor(), LRBackoff(spikes=1, window=1, factor=0.5, duration=1, recovery=0)
    peaks = [1.0, 0.5, 0.25]
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": p} for p in peaks])
    t = trainer(callbacks=[monitor, backoff], optimizers=[opt])
    backoff.setup(t, Module(), "fit")
    module, ran_at = Module(), []
    for step in range(1, 5):
        ran_at.append([g["lr"] for g in opt.param_groups])
        decided(monitor, step - 1, step == 2)
        for group, peak in zip(opt.param_groups, peaks):
            group["lr"] = peak  # the scheduler's LR for the next step, per group
        backoff.on_step(t, module, record(step - 1))
    assert ran_at == [peaks, peaks, [p * 0.5 for p in peaks], peaks]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_step_stays_out_of_the_spike_history(bad):
    """window 4: losses 1.0/1.2 alternate, a non-finite loss at step 5, a jump to 10 at step 7. The
    non-finite value is not judged and does not enter the history, so step 7 is judged against steps
    2, 3, 4 and 6 (mean 1.1, std 0.1) and is a spike, as for a monitor that never saw step 5."""
    losses = [1.0, 1.2, 1.0, 1.2, 1.0, bad, 1.2, 10.0]
    monitor, module = SpikeMonitor(window=4, sigma=6.0, rate_window=4, paper_window=4), Module()
    flags = []
    for step, loss in enumerate(losses):
        monitor.on_step(trainer(), module, record(step, loss=loss))
        flags.append(monitor.decision.spike)
    assert flags == [False] * 7 + [True]
    clean = SpikeMonitor(window=4, sigma=6.0, rate_window=4, paper_window=4)
    for step, loss in enumerate(losses[:5] + losses[6:]):
        clean.on_step(trainer(), Module(), record(step, loss=loss))
    assert list(monitor.detector.loss.history) == list(clean.detector.loss.history)
