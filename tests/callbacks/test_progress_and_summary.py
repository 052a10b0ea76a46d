"""The step progress bar and the model summary, as a user sees them at the start and during ``fit``.

Guards against the bar counting micro-batches of a data epoch (``Epoch 0/-2`` under max_steps) and the
summary printing ``Total FLOPs: 0`` or raw parameter counts.
"""

import logging

from training_helpers import fit, tiny_args

from olmo2_lit.model import ModelConfig, flops_per_token


def _visible(args, tmp_path):
    return [a for a in args if a not in ("--trainer.enable_progress_bar", "--trainer.enable_model_summary")]


def test_bar_counts_optimizer_steps_and_summary_has_flops_per_token(shards, tmp_path, capsys, caplog):
    args = tiny_args(tmp_path, shards, max_steps=5)
    # drop the "false" after the two switches that tiny_args turns off
    for switch in ("--trainer.enable_progress_bar", "--trainer.enable_model_summary"):
        i = args.index(switch)
        del args[i : i + 2]
    with caplog.at_level(logging.INFO):
        fit(args)
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert "step" in text and "5/5" in text  # optimizer steps toward max_steps (accumulation is 2)
    assert "10/" not in text and "Epoch" not in text  # not micro-batches, no epoch counter
    assert "Total Flops" not in text and "FLOPs" not in text.split("total parameters")[0]
    fpt = flops_per_token(ModelConfig.tiny(mlp_hidden=64, vocab_size=256), 64)
    assert "training FLOPs per token at length 64" in text
    assert "K  total parameters" in text  # readable units (tiny model: tens of thousands)
    assert str(round(fpt / 1e3)) in text or f"{fpt / 1e3:.1f}" in text
