"""fit through the CLI: TensorBoard scalars, NaN stop, parse-time errors."""

import pytest

from conftest import fit, scalars, tiny_args

TAGS = ["train/ce_loss", "train/z_loss", "train/perplexity", "optim/lr", "optim/grad_norm",
        "throughput/tokens_seen", "throughput/tokens_per_sec", "val/ce_loss", "val/perplexity"]


def test_tensorboard_event_files_hold_every_metric(shards, tmp_path):
    fit(tiny_args(tmp_path, shards, max_steps=8, extra=(
        "--data.val_paths", f"[{shards}]", "--trainer.val_check_interval", "8",
        "--trainer.limit_val_batches", "2", "--throughput.window", "2",
        "--model.optimizer.init_args.lr", "3e-3")))
    for tag in TAGS:
        assert scalars(tmp_path, tag), f"no {tag} in the event files"
    ce = [v for _, v in scalars(tmp_path, "train/ce_loss")]
    assert len(ce) == 8 and ce[-1] < ce[0]  # learning
    tokens = [v for _, v in scalars(tmp_path, "throughput/tokens_seen")]
    assert tokens[-1] == 8 * 8 * 64
    lrs = [v for _, v in scalars(tmp_path, "optim/lr")]
    assert lrs[0] == 0 and lrs[2] == pytest.approx(3e-3)  # warmup of 2 steps, then the peak
    assert (tmp_path / "runs").rglob("config.yaml")


def test_nan_loss_stops_naming_the_step(shards, tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite training loss nan at step 0"):
        fit(tiny_args(tmp_path, shards, max_steps=3, extra=("--model.config.init", "nan_init.NaNInit")))


@pytest.mark.parametrize("extra, message", [
    (("--model.config.bogus", "1"), "bogus"),
    (("--model.config.block", "prenorm"), "valid names: olmo0424, pre_norm, reordered_norm"),
    (("--model.schedule.warmup", "50"), "model.schedule: schedule warmup (50.0) must be < t_max (20.0)"),
    (("--model.config.n_heads", "5"), "d_model (32) must be divisible by n_heads (5)"),
])
def test_bad_config_fails_at_parse_time(shards, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        fit(tiny_args(tmp_path, shards, max_steps=3, extra=extra))
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing ran
