"""One optimizer step through ``OLMo2LitModule.training_step`` and its clipping, against a hand computation.

A tiny ``olmo2-lit fit`` (in process, one step, SGD with lr 1, a z-loss weight of 0.5 so the z-loss is a
large part of the gradient, clipping at 0.05 so it bites) must log the CE, z-loss and pre-clip grad norm,
and move every weight by exactly the gradient computed here from the same batch and the same initial
weights with ``F.cross_entropy`` and ``logsumexp``, clipped to a global norm of 0.05. Guards against the
z-loss multiplier applied twice (in the logged value or only in the returned loss), clipping removed or
its threshold hard-coded, the wrong loss divisor, and the grad norm logged after clipping.
"""

import torch
import torch.nn.functional as F
from training_helpers import fit, load_weights, scalars, tiny_args

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.export import save_native

T, Z, CLIP = 64, 0.5, 0.05


def _first_batch(shards) -> dict:
    dm = TokenShardDataModule(
        vocab_size=256, train_sources=[DataSource(paths=[str(shards)])], dtype="uint16",
        sequence_length=T, global_batch_size=4, micro_batch_size=4, seed=0,
    )  # fmt: skip
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def test_one_step_matches_hand_computed_loss_z_loss_and_clipping(shards, tmp_path):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(d_model=32, n_heads=4, mlp_hidden=64))
    save_native(model, tmp_path / "init")

    # The hand computation: OLMo 2's loss (OLMO2.md §2.2) over the target tokens, then clip by global norm.
    batch = _first_batch(shards)
    logits = model(batch["input_ids"]).flatten(0, 1)
    labels = batch["labels"].flatten()
    targets = labels != -100
    n = targets.sum()
    ce = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum") / n
    z = Z * (torch.logsumexp(logits, dim=-1)[targets] ** 2).sum() / n
    model.zero_grad()
    (ce + z).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())))
    assert norm > 10 * CLIP  # clipping bites hard, so a missing or looser clip moves the weights more
    scale = CLIP / (norm + 1e-6)
    with torch.no_grad():
        expected = {f"model.{name}": p - scale * grads[name] for name, p in model.named_parameters()}

    root = tmp_path / "run"
    extra = (
        "--data.global_batch_size", "4",
        "--data.micro_batch_size", "4",
        "--model.init_from", str(tmp_path / "init"),
        "--model.z_loss_multiplier", str(Z),
        "--model.optimizer", "torch.optim.SGD",
        "--model.optimizer.init_args.lr", "1.0",
        "--model.optimizer.init_args.weight_decay", "0",  # else AdamW's 0.1 carries over to SGD
        "--model.schedule.warmup", "1",  # step 1 runs at the peak LR
        "--trainer.gradient_clip_val", str(CLIP),
        "--checkpoint.every_n_train_steps", "1",
    )  # fmt: skip
    fit(tiny_args(root, shards, max_steps=1, extra=extra))

    tags = ("train/ce_loss", "train/z_loss", "optim/grad_norm", "optim/lr")
    logged = {tag: scalars(root, tag) for tag in tags}
    assert [v for _, v in logged["optim/lr"]] == [1.0]
    for tag, want in (("train/ce_loss", ce), ("train/z_loss", z), ("optim/grad_norm", norm)):
        (got,) = [v for _, v in logged[tag]]
        assert abs(got - float(want)) <= 1e-5 * abs(float(want)), f"{tag}: logged {got}, hand {float(want)}"
    got = load_weights(root / "ckpt" / "last.ckpt")
    for key, want in expected.items():
        torch.testing.assert_close(got[key], want, atol=1e-7, rtol=1e-5, msg=key)
