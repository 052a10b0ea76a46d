"""``olmo2-lit report`` on event files written with TensorBoard's writer, with known spikes, skipped
steps, an LR backoff, a grad norm that doubles every 10k steps, a throughput stall and a checkpoint's data
position: each appears in the verdict or its section with the right steps and numbers; a run whose
event file is fresh and short of max_steps is reported as still running, an old one is not."""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from research_helpers import write_events

from olmo2_lit.cli import main

STEPS = 20_000


def _run(root):
    steps = range(0, STEPS, 10)
    rng = np.random.default_rng(0)
    spikes = {19_500, 19_700, 19_900, 5_000}
    scalars = {
        "train/ce_loss": {s: 3.0 - s / 20_000 + 0.01 * rng.standard_normal() for s in steps},
        "optim/grad_norm": {s: 0.5 * 2 ** (s / 10_000) for s in steps},  # doubles every 10k steps
        "optim/lr": {s: 1e-3 * min(1.0, s / 1000) for s in steps},
        "throughput/tokens_per_sec": {s: 1000.0 if s != 12_340 else 100.0 for s in steps},
        "throughput/mfu": {s: 0.4 for s in steps},
        "throughput/tokens_seen": {s: 4096.0 * (s + 1) for s in steps},
        "spike/is_spike": {s: float(s in spikes) for s in steps},
        "spike/loss_spike": {s: float(s in {19_900}) for s in steps},
        "optim/step_skipped": {s: float(s in {19_500, 19_700}) for s in steps},
        "optim/lr_backoff": {s: 0.5 if s >= 19_710 else 1.0 for s in steps},
        "val/ce_loss": {10_000: 2.9, 19_990: 2.5},
    }
    write_events(root / "tb" / "version_0", scalars)
    (root / "tb" / "version_0" / "config.yaml").write_text("trainer:\n  max_steps: 30000\n")
    (root / "ckpt").mkdir()
    state = {"epoch": 1, "tokens": 123_456, "total_tokens": 81_920_000, "seed": 7}
    torch.save({"global_step": 19_991, "TokenShardDataModule": state}, root / "ckpt" / "last.ckpt")


def test_report_names_what_happened_and_where(tmp_path, capsys):
    run = tmp_path / "run"
    _run(run)
    main(["report", str(run), "--out", str(tmp_path / "rep")])
    text = capsys.readouterr().out
    assert text == (tmp_path / "rep" / "report.md").read_text()
    verdict = text.split("## Verdict")[1].split("##")[0]
    assert "Still running" in text and "up to step 19,990 of 30,000" in text
    assert "3 spikes in the last 1,000 steps (1 in the loss), last at step 19,900" in verdict
    assert "2 steps skipped by SkipStepAdamW, last at step 19,700" in verdict
    assert "LR backed off now: x0.5 of the schedule (since step 19,710)" in verdict
    assert "grad norm growing x2 per 10k steps" in verdict
    assert "1 stalls (tokens/s under 50% of the median), worst at 12,340" in verdict
    assert "4 spike steps, logged by SpikeMonitor (spike/is_spike): 5,000, 19,500, 19,700, 19,900" in text
    assert "LR 0.001 at step 19,990: 100% of the peak 0.001 (step 1,000), at its peak" in text
    assert "81,920,000 tokens trained on; data epoch 1, 123,456 tokens into it (seed 7)" in text
    assert "val/ce_loss: 2.5 at step 19,990 (first 2.9 at step 10,000)" in text
    assert "MFU: median 40%" in text
    assert (tmp_path / "rep" / "optim_grad_norm.png").stat().st_size > 0


def test_finished_run_is_not_reported_as_running(tmp_path, capsys):
    run = tmp_path / "run"
    _run(run)
    old = time.time() - 3600
    for path in run.rglob("events.out.tfevents.*"):
        os.utime(path, (old, old))
    main(["report", str(run), "--plots", "false"])
    text = capsys.readouterr().out
    assert "Still running" not in text and "Last logged step 19,990 of 30,000" in text and "1.0 h ago" in text
