"""The step's loss is normalized as OLMo-core does, whatever the micro-batch and rank split.

OLMo-core (``TransformerTrainModule.train_batch``) divides the global batch's summed CE and z-loss by
its target-token count, where each instance masked by the instance filter counts as T tokens of zero
loss. One SGD step (lr 1, no clipping, no decay) from known weights must move them by exactly that
loss's gradient, computed here directly from the batch, at micro 1 x accumulation 4, micro 4 x
accumulation 1 and 2-process DDP. Guards against the mean of per-micro-batch means (which weighs the
unmasked instances of a micro-batch with a masked one by 4/3) and against dropping masked tokens.
"""

import numpy as np
import pytest
import torch
from training_helpers import fit_subprocess, load_weights, tiny_args

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.loss import lm_loss_sums
from olmo2_lit.weights.export import save_native

T = 64
Z = 1e-5


@pytest.fixture(scope="module")
def filtered_shards(tmp_path_factory):
    """Raw uint16 shards where every third 64-token instance is one token repeated (masked)."""
    root = tmp_path_factory.mktemp("filtered")
    rng = np.random.default_rng(1)
    for i in range(2):
        tokens = rng.integers(0, 256, size=4096)
        for start in range(0, 4096, 3 * T):
            tokens[start : start + T] = 7
        tokens.astype(np.uint16).tofile(root / f"part-{i}.npy")
    return root


def _args(root, shards, init, *extra):
    return [
        *tiny_args(root, shards, max_steps=1),
        "--data.global_batch_size", "4",
        "--data.instance_filter", "true",
        "--model.init_from", str(init),
        "--model.optimizer", "torch.optim.SGD",
        "--model.optimizer.init_args.lr", "1.0",
        "--model.optimizer.init_args.weight_decay", "0",  # jsonargparse keeps AdamW's 0.1 otherwise
        "--model.schedule", "olmo2_lit.train.schedules.Constant",
        "--model.schedule.warmup", "0",  # LR 1 at step 1 (jsonargparse keeps tiny_args' warmup otherwise)
        "--trainer.gradient_clip_val", "0",
        "--checkpoint.every_n_train_steps", "1",
        *extra,
    ]  # fmt: skip


def _first_batch(shards, seed: int) -> dict:
    dm = TokenShardDataModule(
        vocab_size=256, train_sources=[DataSource(paths=[str(shards)])], dtype="uint16",
        sequence_length=T, global_batch_size=4, micro_batch_size=4, instance_filter=True, seed=seed,
    )  # fmt: skip
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def _mixed_first_batch(shards) -> tuple[int, dict]:
    """The first data seed whose first global batch mixes masked and kept instances (so the split matters)."""
    for seed in range(50):
        batch = _first_batch(shards, seed)
        if 0 < int((~batch["instance_mask"]).sum()) < 4:
            return seed, batch
    raise AssertionError("no seed gives a mixed first batch")


def _sgd_step(model: Transformer, loss: torch.Tensor) -> dict:
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        return {f"model.{n}": p - p.grad for n, p in model.named_parameters()}


def test_one_step_equals_olmo_core_loss_at_every_split(filtered_shards, tmp_path):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(d_model=32, n_heads=4, mlp_hidden=64))
    init = tmp_path / "init"
    save_native(model, init)
    seed, batch = _mixed_first_batch(filtered_shards)
    masked = int((~batch["instance_mask"]).sum())
    ce, z = lm_loss_sums(model(batch["input_ids"]), batch["labels"], z_loss_multiplier=Z)
    expected = _sgd_step(model, (ce + z) / ((batch["labels"] != -100).sum() + masked * T))

    splits = {
        "micro1_accum4": ("--data.micro_batch_size", "1"),
        "micro4_accum1": ("--data.micro_batch_size", "4"),
        "ddp2_micro2": (
            "--data.micro_batch_size",
            "2",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
        ),
    }
    for name, extra in splits.items():
        fit_subprocess(
            _args(tmp_path / name, filtered_shards, init, "--data.seed", str(seed), *extra), tmp_path
        )
        got = load_weights(tmp_path / name / "ckpt" / "last.ckpt")
        for key, want in expected.items():
            torch.testing.assert_close(got[key], want, atol=2e-6, rtol=1e-5, msg=f"{name}: {key}")

    # The check can fail: the old mean of per-micro-batch means (micro 1) lands far from it.
    per_instance = [
        sum(
            lm_loss_sums(
                model(batch["input_ids"][i : i + 1]), batch["labels"][i : i + 1], z_loss_multiplier=Z
            )
        )
        / (batch["labels"][i] != -100).sum().clamp(min=1)
        for i in range(4)
    ]
    old = _sgd_step(model, sum(per_instance) / 4)
    assert max((old[k] - expected[k]).abs().max() for k in expected) > 1e-4
