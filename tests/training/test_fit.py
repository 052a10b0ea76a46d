"""fit through the CLI: TensorBoard scalars, NaN stop, parse-time errors."""

from pathlib import Path

import pytest
from training_helpers import fit, scalars, tiny_args

from olmo2_lit.model import ModelConfig, flops_per_token

TAGS = [
    "train/ce_loss",
    "train/z_loss",
    "train/perplexity",
    "optim/lr",
    "optim/grad_norm",
    "throughput/tokens_seen",
    "throughput/tokens_per_sec",
    "val/ce_loss",
    "val/perplexity",
]


def test_tensorboard_event_files_hold_every_metric(shards, tmp_path):
    fit(
        tiny_args(
            tmp_path,
            shards,
            max_steps=8,
            extra=(
                "--data.val_paths",
                f"[{shards}]",
                "--trainer.val_check_interval",
                "8",
                "--trainer.limit_val_batches",
                "2",
                "--throughput.window",
                "2",
                "--throughput.peak_flops_per_device",
                "1e12",
                "--model.optimizer.init_args.lr",
                "3e-3",
            ),
        )
    )
    for tag in TAGS:
        assert scalars(tmp_path, tag), f"no {tag} in the event files"
    ce = [v for _, v in scalars(tmp_path, "train/ce_loss")]
    assert len(ce) == 8 and ce[-1] < ce[0]  # learning
    tokens = [v for _, v in scalars(tmp_path, "throughput/tokens_seen")]
    assert tokens[-1] == 8 * 8 * 64
    lrs = [v for _, v in scalars(tmp_path, "optim/lr")]
    # OLMo/OLMo-core indexing: step k runs at the schedule's value at k (warmup 2: half, then the peak)
    assert lrs[0] == pytest.approx(1.5e-3) and lrs[1] == pytest.approx(3e-3)
    assert any((tmp_path / "runs").rglob("config.yaml"))  # the resolved config is saved with the logs
    mfu = scalars(tmp_path, "throughput/mfu")
    tps = dict(scalars(tmp_path, "throughput/tokens_per_sec"))
    flops = flops_per_token(ModelConfig.tiny(mlp_hidden=64, vocab_size=256), 64)
    assert mfu and all(v == pytest.approx(flops * tps[step] / 1e12, rel=1e-4) for step, v in mfu)


def test_startup_time_is_logged_once(shards, tmp_path, monkeypatch):
    # Logged and printed once, at the end of the second optimizer step. The values' arithmetic is checked
    # on hand-made timestamps (tests/test_startup.py), not against this machine's speed.
    from olmo2_lit.callbacks import throughput

    printed = []
    monkeypatch.setattr(throughput, "rank_zero_info", printed.append)
    fit(tiny_args(tmp_path, shards, max_steps=4, extra=("--throughput.window", "1")))
    (first,) = scalars(tmp_path, "throughput/first_step_s")
    (startup,) = scalars(tmp_path, "throughput/startup_s")
    assert first[0] == startup[0] == 2
    assert 0 <= startup[1] <= first[1]
    assert [line.startswith("start-up: the first optimizer step took") for line in printed] == [True]


def test_nan_loss_stops_naming_the_step(shards, tmp_path):
    # The CLI's NonFiniteGuard stops and names its report (tests/callbacks/test_nonfinite_guard.py).
    with pytest.raises(
        FloatingPointError, match=r"non-finite loss or gradient at step 0; see .*nonfinite_step"
    ):
        fit(tiny_args(tmp_path, shards, max_steps=3, extra=("--model.config.init", "nan_init.NaNInit")))


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--model.config.bogus", "1"), "bogus"),
        (("--model.config.block", "prenorm"), "valid names: olmo0424, pre_norm, reordered_norm"),
        (("--model.schedule.warmup", "50"), "schedule warmup (50.0) must be < t_max (20.0)"),
        (("--model.config.n_heads", "5"), "d_model (32) must be divisible by n_heads (5)"),
        (
            ("--model.config.preset", "olmo3"),
            "unknown preset 'olmo3'; valid: olmo2_1b, olmo2_7b, olmo2_13b, olmo2_32b, tiny",
        ),
        (
            ("--model.config.max_sequence_length", "32"),
            "model.config.max_sequence_length (32) is shorter than data.sequence_length (64)",
        ),
    ],
)
def test_bad_config_fails_at_parse_time(shards, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        fit(tiny_args(tmp_path, shards, max_steps=3, extra=extra))
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_bf16_mixed_fit_runs_and_learns(shards, tmp_path):
    fit(
        tiny_args(
            tmp_path,
            shards,
            max_steps=6,
            extra=("--trainer.precision", "bf16-mixed", "--model.optimizer.init_args.lr", "3e-3"),
        )
    )
    ce = [v for _, v in scalars(tmp_path, "train/ce_loss")]
    assert len(ce) == 6 and all(v == v for v in ce) and ce[-1] < ce[0]


def test_user_block_selected_from_yaml(shards, tmp_path, monkeypatch):
    """A block defined outside the library (tests/model/my_blocks.py), chosen by one YAML line."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "model"))
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("model:\n  config:\n    block: my_blocks.ParallelBlock\n")
    cli = fit(["--config", str(recipe), *tiny_args(tmp_path, shards, max_steps=2)])
    assert type(cli.model.model.blocks[0]).__name__ == "ParallelBlock"
    assert len(scalars(tmp_path, "train/ce_loss")) == 2


def test_export_a_trained_checkpoint_to_transformers(shards, tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch

    from olmo2_lit.cli import main
    from olmo2_lit.weights.pretrained import load_pretrained

    fit(tiny_args(tmp_path, shards, max_steps=2))
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    main(
        [
            "convert",
            "to-hf",
            "--checkpoint",
            str(ckpt),
            "--out_dir",
            str(tmp_path / "hf"),
            "--dtype",
            "float32",
            "--eos_token_id",
            "0",
            "--pad_token_id",
            "1",
        ]
    )
    hf = transformers.Olmo2ForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ours = load_pretrained(ckpt).eval()
    ids = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(input_ids=ids).logits, atol=1e-5, rtol=0)


def test_validate_test_and_predict_verbs_on_a_checkpoint(shards, tmp_path):
    import torch
    from training_helpers import OLMo2CLI

    base = tiny_args(tmp_path, shards, max_steps=2)
    fit(base)
    ckpt = str(tmp_path / "ckpt" / "last.ckpt")
    held_out = (
        "--data.val_paths",
        f"[{shards}]",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.limit_test_batches",
        "2",
        "--trainer.limit_predict_batches",
        "1",
    )
    val = OLMo2CLI(args=["validate", *base, *held_out, "--ckpt_path", ckpt])
    test = OLMo2CLI(args=["test", *base, *held_out, "--ckpt_path", ckpt])
    assert val.trainer.callback_metrics["val/ce_loss"] == test.trainer.callback_metrics["test/ce_loss"] > 0
    pred = OLMo2CLI(args=["predict", *base, *held_out, "--ckpt_path", ckpt])
    assert pred.trainer.predict_loop.predictions[0].shape == (4, 64)
    assert pred.trainer.predict_loop.predictions[0].dtype == torch.int64


def test_stage2_starts_from_checkpoint_weights_and_lr_with_fresh_data(shards, tmp_path):
    import torch

    fit(tiny_args(tmp_path / "s1", shards, max_steps=4, extra=("--model.optimizer.init_args.lr", "3e-3")))
    ckpt = tmp_path / "s1" / "ckpt" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    stage1_lrs = [v for _, v in scalars(tmp_path / "s1", "optim/lr")]
    end_lr = saved["olmo2_lit"]["step_lr"]
    assert end_lr == pytest.approx(stage1_lrs[saved["global_step"] - 1], rel=1e-6)  # its last step's LR
    cli = fit(
        tiny_args(
            tmp_path / "s2",
            shards,
            max_steps=2,
            extra=(
                "--model.init_from",
                str(ckpt),
                "--model.lr_from_checkpoint",
                "true",
                "--model.schedule",
                "olmo2_lit.train.schedules.LinearDecay",
                "--model.schedule.t_max",
                "4",
                "--model.schedule.warmup",
                "0",
                "--seed_everything",
                "7",
                "--data.seed",
                "7",
            ),
        )
    )
    lrs = [v for _, v in scalars(tmp_path / "s2", "optim/lr")]
    # LinearDecay over 4 steps from the end LR, step k at k (OLMo-core indexing)
    assert lrs[0] == pytest.approx(end_lr * 0.75) and lrs[1] == pytest.approx(end_lr * 0.5)
    s1 = [v for _, v in scalars(tmp_path / "s1", "train/ce_loss")]
    s2 = [v for _, v in scalars(tmp_path / "s2", "train/ce_loss")]
    assert s2[0] < s1[0]  # it starts from trained weights, not from the init
    assert cli.datamodule.state_dict()["tokens"] == 2 * 8 * 64  # data position started at 0 (not restored)


def test_stage2_keeps_the_optimizer_state_unless_told_not_to(shards, tmp_path):
    """OLMo 2's stage 2 loads stage 1's Adam moments and step counts (OLMo trainer and OLMo-core);
    ``init_optimizer_state: false`` starts them fresh; a checkpoint without them names that switch."""
    import torch

    fit(tiny_args(tmp_path / "s1", shards, max_steps=3))
    ckpt = tmp_path / "s1" / "ckpt" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["optimizer_states"][0]["state"]
    stage2 = ("--model.init_from", str(ckpt), "--trainer.max_steps", "0")
    kept = fit(tiny_args(tmp_path / "kept", shards, max_steps=1, extra=stage2))
    state = kept.trainer.optimizers[0].state_dict()["state"]
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k]["exp_avg"], saved[k]["exp_avg"]) for k in saved)
    assert all(float(state[k]["step"]) == 3 for k in saved)
    fresh = fit(
        tiny_args(
            tmp_path / "fresh", shards, max_steps=1, extra=(*stage2, "--model.init_optimizer_state", "false")
        )
    )
    assert fresh.trainer.optimizers[0].state_dict()["state"] == {}

    bare = tmp_path / "weights_only.ckpt"
    full = torch.load(ckpt, map_location="cpu", weights_only=False)
    full["optimizer_states"] = []
    torch.save(full, bare)
    with pytest.raises(ValueError, match="no optimizer state; set model.init_optimizer_state: false"):
        fit(tiny_args(tmp_path / "bare", shards, max_steps=1, extra=("--model.init_from", str(bare))))


def test_stage2_starts_at_a_stated_lr_with_the_checkpoint_moments(shards, tmp_path):
    """The 1B/7B/13B stage-2 recipes' way: ``lr_from_checkpoint: false`` and the published start LR in
    ``model.optimizer.init_args.lr``; the Adam moments still come from the checkpoint. From a weights
    directory (no optimizer state), ``lr_from_checkpoint`` is refused, saying how to give the LR."""
    import torch

    from olmo2_lit.train.checkpoint_state import start_from_checkpoint

    fit(tiny_args(tmp_path / "s1", shards, max_steps=3, extra=("--model.optimizer.init_args.lr", "3e-3")))
    ckpt = tmp_path / "s1" / "ckpt" / "last.ckpt"
    stated = 1.25e-3  # not stage 1's end LR
    schedule = ("--model.schedule", "olmo2_lit.train.schedules.LinearDecay", "--model.schedule.t_max", "4")
    extra = ("--model.init_from", str(ckpt), "--model.lr_from_checkpoint", "false", *schedule,
             "--model.schedule.warmup", "0", "--model.optimizer.init_args.lr", str(stated))  # fmt: skip
    cli = fit(tiny_args(tmp_path / "s2", shards, max_steps=2, extra=extra))
    lrs = [v for _, v in scalars(tmp_path / "s2", "optim/lr")]
    assert lrs == pytest.approx([stated * 0.75, stated * 0.5])
    assert all(float(s["step"]) == 3 + 2 for s in cli.trainer.optimizers[0].state_dict()["state"].values())

    weights_dir = tmp_path / "hf"
    weights_dir.mkdir()
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=stated)
    with pytest.raises(
        ValueError, match="--model.lr_from_checkpoint false --model.optimizer.init_args.lr LR"
    ):
        start_from_checkpoint(optimizer, str(weights_dir), optimizer_state=True, lr=True)
    start_from_checkpoint(optimizer, str(weights_dir), optimizer_state=True, lr=False)  # weights only
    assert optimizer.param_groups[0]["lr"] == stated
