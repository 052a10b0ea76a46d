"""Exact resume with every stability callback and the skip-step optimizer on: N straight = k + resume."""

import torch
from stability_config import layer, probe, skip_step_optimizer
from training_helpers import fit, load_weights, scalars, tiny_args

CB = "olmo2_lit.callbacks"
CALLBACKS = [
    {"class_path": f"{CB}.spike_monitor.SpikeMonitor", "init_args": {"window": 2, "paper_window": 2}},
    {
        "class_path": f"{CB}.lr_backoff.LRBackoff",
        "init_args": {"spikes": 1, "window": 4, "factor": 0.5, "duration": 3, "recovery": 2},
    },
    {"class_path": f"{CB}.rollback.Rollback", "init_args": {"spikes": 3, "window": 3}},
    {"class_path": f"{CB}.diagnostics.Diagnostics", "init_args": {"interval": 1}},
    probe("ScaleGradsAt", steps=[2]),
]
TAGS = [
    "train/ce_loss",
    "optim/lr",
    "optim/grad_norm",
    "optim/step_skipped",
    "optim/lr_backoff",
    "spike/is_spike",
    "spike/paper_score_grad_norm",
    "diag/grad_norm/block_1",
    "diag/update_ratio/lm_head",
]


def test_resume_is_bitwise_with_stability_on(shards, tmp_path):
    """Guards against stability state that is not checkpointed (monitor history, backoff countdown,
    the optimizer's loss history): a spike at step 2 starts a backoff that spans the resume at 3."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for root in (straight, stopped):
        root.mkdir()
    optimizer = skip_step_optimizer(rolling=6)
    fit(
        tiny_args(
            straight,
            shards,
            max_steps=6,
            extra=tuple(layer(straight / "s.yaml", CALLBACKS, optimizer=optimizer)),
        )
    )
    stop = tuple(layer(stopped / "s.yaml", CALLBACKS, optimizer=optimizer))
    fit(tiny_args(stopped, shards, max_steps=3, extra=stop))
    resume = (*stop, "--ckpt_path", str(stopped / "ckpt" / "step0000003.ckpt"))
    fit(tiny_args(stopped, shards, max_steps=6, extra=resume))

    for tag in TAGS:
        a, b = scalars(straight, tag), scalars(stopped, tag)
        assert a == b and a, tag
        assert len(a) == (4 if tag.startswith("spike/paper") else 6), tag  # judged from step 2 on
    assert [s for s, v in scalars(straight, "spike/is_spike") if v] == [2]
    assert [s for s, v in scalars(straight, "optim/step_skipped") if v] == [2]
    assert [v for _, v in scalars(straight, "optim/lr_backoff")] == [1, 1, 1, 0.5, 0.5, 0.5]
    wa, wb = load_weights(straight / "ckpt" / "last.ckpt"), load_weights(stopped / "ckpt" / "last.ckpt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
