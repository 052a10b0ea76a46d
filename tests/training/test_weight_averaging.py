"""ModelMerger in a tiny real fit: the merged directory is the mean of the weights at the last N steps."""

import pytest
import torch
from training_helpers import fit, load_weights, tiny_args

from olmo2_lit.weights.pretrained import read_native


def test_merged_weights_are_the_mean_of_the_last_n_steps(shards, tmp_path):
    """Reference: the step checkpoints of the same run (every step), averaged by hand. Guards the
    window (off by one step shows), counting micro-batches instead of optimizer steps (accum 2 here),
    and the output location/format."""
    merger = "olmo2_lit.callbacks.weight_averaging.ModelMerger"
    cli = fit(
        tiny_args(
            tmp_path,
            shards,
            max_steps=7,
            extra=(
                "--checkpoint.every_n_train_steps",
                "1",
                "--trainer.callbacks+",
                merger,
                "--trainer.callbacks.merge_steps",
                "[6]",
                "--trainer.callbacks.last_n_steps",
                "3",
            ),
        )
    )
    ckpt = tmp_path / "ckpt"
    cfg, merged = read_native(ckpt / "step0000006-merged")
    assert cfg == cli.model.config
    per_step = {s: load_weights(ckpt / f"step{s:07d}.ckpt") for s in (3, 4, 5, 6)}
    for key, tensor in merged.items():
        stacked = torch.stack([per_step[s][f"model.{key}"] for s in (4, 5, 6)]).double()
        torch.testing.assert_close(tensor, stacked.mean(0).float(), rtol=1e-7, atol=0)
    # the window matters: steps 3..5 give a different average
    key = "blocks.0.attention.w_q.weight"
    wrong = torch.stack([per_step[s][f"model.{key}"] for s in (3, 4, 5)]).double().mean(0).float()
    assert (merged[key] - wrong).abs().max() > 1e-6


def test_construction_errors():
    """Both or neither of merge_steps/every_n_steps, and a merge step inside the first window, fail."""
    from olmo2_lit.callbacks.weight_averaging import ModelMerger

    with pytest.raises(ValueError, match="exactly one of merge_steps and every_n_steps"):
        ModelMerger(merge_steps=[10], every_n_steps=5)
    with pytest.raises(ValueError, match="must be >= last_n_steps"):
        ModelMerger(merge_steps=[3], last_n_steps=5)
