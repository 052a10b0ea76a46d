"""Save and resume under DDP and FSDP2 on 2 CPU ranks (gloo), as subprocesses, and sharded checkpoints.

Each run saves at step 2 of 4, so it is also the uninterrupted reference for a run resumed from its
step-2 checkpoint. Guards against state that a resume drops or duplicates (optimizer moments, LR
schedule, data position, RNG) under each strategy, against sharded checkpoints that only load at the
world size that wrote them, against a DDP file whose Adam state FSDP2 hands to the wrong parameters,
against a consolidation that loses or misorders optimizer state (a DDP run resumed from it would drift),
and against a sharded checkpoint fed to a single-file strategy failing with an opaque error.
"""

from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import fit, fit_subprocess, load_weights, scalars, tiny_args

from olmo2_lit.train.checkpoint_publish import STAGING
from olmo2_lit.weights.consolidate import consolidate, load_sharded

STRATEGIES = Path(__file__).resolve().parents[2] / "experiments" / "strategies"
# fp32 compute on CPU, so resumes can be compared bitwise
FSDP2 = ("--config", str(STRATEGIES / "fsdp2.yaml"), "--model.parallelize.fsdp_param_dtype", "null",
         "--model.parallelize.fsdp_reduce_dtype", "null")  # fmt: skip
DDP = ("--config", str(STRATEGIES / "ddp.yaml"))
EVERY_2 = ("--checkpoint.every_n_train_steps", "2")
CE = "train/ce_loss"


def _devices(n):
    return ("--trainer.devices", str(n))


def test_ddp_resume_is_bitwise_and_its_file_resumes_under_fsdp2(shards, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fit_subprocess(tiny_args(a, shards, max_steps=4, extra=(*DDP, *_devices(2), *EVERY_2)), tmp_path)
    resume = ("--ckpt_path", str(a / "ckpt" / "step0000002.ckpt"), *EVERY_2)  # last.ckpt at step 4 too
    fit_subprocess(tiny_args(b, shards, max_steps=4, extra=(*DDP, *_devices(2), *resume)), tmp_path)
    assert [s for s, _ in scalars(a, CE)] == [0, 1, 2, 3]
    assert scalars(b, CE) == scalars(a, CE)[2:]  # steps 2 and 3, exactly
    wa, wb = load_weights(a / "ckpt" / "last.ckpt"), load_weights(b / "ckpt" / "last.ckpt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    # the same DDP file resumed under FSDP2: Adam's state must reach the right parameters although
    # OLMo 2's param groups number them in another order than the module (embeddings last)
    c = tmp_path / "c"
    resume = ("--ckpt_path", str(a / "ckpt" / "step0000002.ckpt"))
    fit_subprocess(tiny_args(c, shards, max_steps=4, extra=(*FSDP2, *_devices(2), *resume)), tmp_path)
    for tag in (CE, "optim/grad_norm"):
        assert [s for s, _ in scalars(c, tag)] == [2, 3]
        assert [v for _, v in scalars(c, tag)] == pytest.approx([v for _, v in scalars(a, tag)[2:]], rel=1e-5)


def test_fsdp2_sharded_checkpoint_resumes_exactly_on_other_world_sizes_and_after_consolidation(
    shards, tmp_path
):
    a = tmp_path / "a"
    fit_subprocess(tiny_args(a, shards, max_steps=4, extra=(*FSDP2, *_devices(2), *EVERY_2)), tmp_path)
    step2 = a / "ckpt" / "step0000002.ckpt"
    assert sorted(p.name for p in step2.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert [p.name for p in (a / "ckpt").iterdir() if p.name.startswith(".")] == [STAGING]
    assert not list((a / "ckpt" / STAGING).iterdir())  # no partial saves left
    reference = scalars(a, CE)
    record = yaml.safe_load((a / "runs" / "olmo2" / "version_0" / "strategy.yaml").read_text())
    assert record["strategy"]["class"] == "olmo2_lit.train.strategies.FSDP2Strategy"
    assert record["strategy"]["data_parallel_size"] == 2 and record["strategy"]["world_size"] == 2
    assert [s for s, _ in reference] == [0, 1, 2, 3]

    # same strategy and world size: bitwise, losses and the final sharded state
    b = tmp_path / "b"
    fit_subprocess(
        tiny_args(b, shards, max_steps=4, extra=(*FSDP2, *_devices(2), *EVERY_2, "--ckpt_path", str(step2))),
        tmp_path,
    )
    assert scalars(b, CE) == reference[2:]
    sa, sb = load_sharded(a / "ckpt" / "last.ckpt"), load_sharded(b / "ckpt" / "last.ckpt")
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])

    # the 2-rank shards on 1 rank (DCP reshards): the same run, up to reduction order
    c = tmp_path / "c"
    fit_subprocess(
        tiny_args(c, shards, max_steps=4, extra=(*FSDP2, *_devices(1), "--ckpt_path", str(step2))), tmp_path
    )
    assert [s for s, _ in scalars(c, CE)] == [2, 3]
    assert [v for _, v in scalars(c, CE)] == pytest.approx([v for _, v in reference[2:]], rel=1e-5)

    # consolidated into one file, resumed under DDP on 2 ranks
    one_file = tmp_path / "step2.ckpt"
    consolidate(checkpoint=str(step2), out=str(one_file))
    d = tmp_path / "d"
    fit_subprocess(
        tiny_args(d, shards, max_steps=4, extra=(*DDP, *_devices(2), "--ckpt_path", str(one_file))), tmp_path
    )
    assert [s for s, _ in scalars(d, CE)] == [2, 3]
    assert [v for _, v in scalars(d, CE)] == pytest.approx([v for _, v in reference[2:]], rel=1e-5)
    # its optimizer moments are the sharded ones, in the optimizer's own parameter order
    exp_avg = torch.load(one_file, weights_only=False)["optimizer_states"][0]["state"][0]["exp_avg"]
    assert exp_avg.shape == sa["state_dict"]["model.blocks.0.attention.w_q.weight"].shape

    # the directory given to a single-file strategy names the consolidation verb
    with pytest.raises(ValueError, match="olmo2-lit convert consolidate"):
        fit(tiny_args(tmp_path / "e", shards, max_steps=4, extra=("--ckpt_path", str(step2))))
