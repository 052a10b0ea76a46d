"""Exact resume: N steps straight equals k steps, stop, resume to N (bitwise on CPU fp32)."""

import pytest
import torch
from training_helpers import fit, load_weights, scalars, tiny_args

from olmo2_lit.train.checkpoint_publish import STAGING


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stop_and_resume_is_bitwise_identical(shards, tmp_path, num_workers):
    workers = ("--data.num_workers", str(num_workers))
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    fit(tiny_args(straight, shards, max_steps=6, extra=workers))
    fit(tiny_args(stopped, shards, max_steps=3, extra=workers))
    assert (stopped / "ckpt" / "step0000003.ckpt").exists()
    fit(
        tiny_args(
            stopped,
            shards,
            max_steps=6,
            extra=(*workers, "--ckpt_path", str(stopped / "ckpt" / "step0000003.ckpt")),
        )
    )

    a, b = scalars(straight, "train/ce_loss"), scalars(stopped, "train/ce_loss")
    assert [s for s, _ in a] == [0, 1, 2, 3, 4, 5] and len(b) == 6
    assert a == b  # every per-step loss, exactly
    assert scalars(straight, "optim/lr") == scalars(stopped, "optim/lr")
    wa, wb = load_weights(straight / "ckpt" / "last.ckpt"), load_weights(stopped / "ckpt" / "last.ckpt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the run moved: weights differ from the step-3 checkpoint
    w3 = load_weights(stopped / "ckpt" / "step0000003.ckpt")
    assert not torch.equal(w3["model.lm_head.weight"], wb["model.lm_head.weight"])


def test_checkpoint_carries_data_position_rng_and_config(shards, tmp_path):
    fit(tiny_args(tmp_path, shards, max_steps=3))
    ckpt = torch.load(tmp_path / "ckpt" / "step0000003.ckpt", map_location="cpu", weights_only=False)
    data_state = ckpt["TokenShardDataModule"]
    assert data_state["tokens"] == 3 * 8 * 64 and data_state["seed"] == 0
    assert ckpt["olmo2_lit"]["model_config"]["n_layers"] == 2
    assert ckpt["olmo2_lit"]["model_config"]["vocab_size"] == 256  # linked from data.vocab_size
    assert set(ckpt["olmo2_lit"]["rng"]) >= {"python", "numpy", "torch"}
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 3  # three steps done
    assert data_state["total_tokens"] == 3 * 8 * 64  # the run's one token counter
    # atomic writes leave no temp files (written in the staging directory, then renamed into place)
    assert not list((tmp_path / "ckpt").glob(".*.tmp")) and not list((tmp_path / "ckpt" / STAGING).iterdir())


def test_resume_with_another_model_config_names_the_field(shards, tmp_path):
    fit(tiny_args(tmp_path, shards, max_steps=3))
    with pytest.raises(ValueError, match="n_layers: checkpoint has 2, config has 3"):
        fit(
            tiny_args(
                tmp_path / "other",
                shards,
                max_steps=6,
                extra=("--model.config.n_layers", "3", "--ckpt_path", str(tmp_path / "ckpt" / "last.ckpt")),
            )
        )


def test_missing_checkpoint_is_an_error_not_a_fresh_run(shards, tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit(tiny_args(tmp_path, shards, max_steps=3, extra=("--ckpt_path", str(tmp_path / "nope.ckpt"))))
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()
