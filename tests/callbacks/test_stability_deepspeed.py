"""The spike monitor, SkipStepAdamW and LRBackoff under DeepSpeed ZeRO-2 on 2 CPU ranks (gloo, the
``cpu_deepspeed.py`` harness), with gradient accumulation, against one process at the same global batch.

Guards against stability callbacks that cannot run under DeepSpeed (the grad norm lives in the engine),
a spike that DeepSpeed hides from the monitor or from SkipStepAdamW (wrapped inside ZeRO's optimizer), a
step judged once per micro-batch instead of once per optimizer step (Lightning calls
``on_before_optimizer_step`` after every micro-batch under DeepSpeed), and the refusals, at setup, of the
stability callbacks that cannot run there.
"""

from pathlib import Path

import pytest
from stability_config import MONITOR, layer, probe, skip_step_optimizer
from training_helpers import fit_subprocess, make_shards, scalars, tiny_args

pytest.importorskip("deepspeed", reason="pip install deepspeed (olmo2_lit[deepspeed]) to run it")

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parent / "training"
REPO = HERE.parents[1]
SPIKE_AT = 10
STEPS = 14
BACKOFF = {
    "class_path": "olmo2_lit.callbacks.lr_backoff.LRBackoff",
    "init_args": {"spikes": 1, "window": 4, "factor": 0.5, "duration": 2, "recovery": 0},
}


def stability_run(root: Path, shards: Path, *, ranks: int) -> Path:
    """SpikeMonitor + SkipStepAdamW + LRBackoff, a grad spike injected at step 10; global batch 8 as
    micro 4 x accumulation 2 on one process, or micro 2 x accumulation 2 x 2 ranks under ZeRO-2."""
    extra = layer(
        root.parent / f"{root.name}.yaml",
        [MONITOR, BACKOFF, probe("ScaleLossAt", steps=[SPIKE_AT])],
        optimizer=skip_step_optimizer(rolling=16),
    )
    if ranks > 1:
        extra += ["--trainer.devices", str(ranks), "--data.micro_batch_size", "2",
                  "--config", str(REPO / "experiments/strategies/deepspeed_zero2.yaml")]  # fmt: skip
    fit_subprocess(
        tiny_args(root, shards, max_steps=STEPS, extra=tuple(extra)),
        root.parent,
        pythonpath=(HERE, TRAINING),
        script=TRAINING / "cpu_deepspeed.py" if ranks > 1 else None,
        env={"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"},
    )
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    shards = make_shards(tmp_path_factory.mktemp("shards"))
    base = tmp_path_factory.mktemp("runs")
    return stability_run(base / "one", shards, ranks=1), stability_run(base / "zero2", shards, ranks=2)


@pytest.mark.slow
def test_spike_monitor_skip_step_and_lr_backoff_run_under_deepspeed(runs):
    one, zero2 = runs
    steps = list(range(STEPS))
    for tag in ("spike/is_spike", "optim/step_skipped", "optim/lr_backoff"):
        assert [s for s, _ in scalars(zero2, tag)] == steps, tag  # once per optimizer step
    spikes = dict(scalars(zero2, "spike/is_spike"))
    assert [s for s, v in spikes.items() if v] == [SPIKE_AT]  # judged after the window (8) filled
    skipped = dict(scalars(zero2, "optim/step_skipped"))
    assert [s for s, v in skipped.items() if v] == [SPIKE_AT]  # SkipStepAdamW inside ZeRO's wrapper
    backoff = dict(scalars(zero2, "optim/lr_backoff"))
    assert [s for s, v in backoff.items() if v != 1.0] == [SPIKE_AT + 1, SPIKE_AT + 2]
    assert backoff[SPIKE_AT + 1] == 0.5
    # the same run as one process: the spike, the skip and the backoff change nothing else
    for tag in ("train/ce_loss", "optim/grad_norm", "optim/lr", "spike/is_spike", "optim/step_skipped"):
        ours, ref = scalars(zero2, tag), scalars(one, tag)
        assert [s for s, _ in ours] == [s for s, _ in ref], tag
        assert [v for _, v in ours] == pytest.approx([v for _, v in ref], rel=1e-4), tag


@pytest.mark.parametrize(
    ("callback", "match"),
    [
        ({"class_path": "olmo2_lit.callbacks.rollback.Rollback", "init_args": {"spikes": 1, "window": 6}},
         "Rollback does not run under DeepSpeed"),
        ({"class_path": "olmo2_lit.callbacks.diagnostics.Diagnostics", "init_args": {"interval": 1}},
         "Diagnostics does not run under DeepSpeed"),
    ],
)  # fmt: skip
def test_stability_callbacks_deepspeed_cannot_run_are_refused_at_setup(callback, match, tmp_path):
    shards = make_shards(tmp_path)
    root = tmp_path / "run"
    extra = [*layer(tmp_path / "cb.yaml", [MONITOR, callback]), "--trainer.devices", "2",
             "--config", str(REPO / "experiments/strategies/deepspeed_zero2.yaml")]  # fmt: skip
    proc = fit_subprocess(
        tiny_args(root, shards, max_steps=2, extra=tuple(extra)),
        tmp_path,
        check=False,
        script=TRAINING / "cpu_deepspeed.py",
        env={"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode != 0
    assert match in proc.stderr
