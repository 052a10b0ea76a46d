"""Two ranks on CPU (gloo), run as subprocesses: 2 ranks x micro 4 must train like 1 rank x micro 4
x accum 2, under DDP and under FSDP2 (Lightning's ModelParallelStrategy with ``fully_shard``).

Same global batches, the same step loss and the same global grad norm before clipping (up to reduction
order), with clipping active, so every later step depends on the clipping being right on every rank.
Guards against clipping that is skipped or uses another threshold (the two runs would drift apart
from the reference only if both were wrong the same way, which the unclipped-norm check excludes),
and against a logged loss that is one rank's last micro-batch.
"""

import pytest
from training_helpers import fit_subprocess, scalars, tiny_args

FSDP2 = """trainer:
  devices: 2
  strategy:
    class_path: lightning.pytorch.strategies.ModelParallelStrategy
    init_args: {data_parallel_size: 2, tensor_parallel_size: 1, save_distributed_checkpoint: false}
"""


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_ranks_match_one_rank_with_accumulation(shards, tmp_path, strategy):
    clip = ("--trainer.gradient_clip_val", "0.05")  # small, so clipping is active and must agree
    fit_subprocess(tiny_args(tmp_path / "one", shards, max_steps=4, extra=clip), tmp_path)
    if strategy == "ddp":
        two = ("--trainer.devices", "2", "--trainer.strategy", "ddp")
    else:
        (tmp_path / "fsdp2.yaml").write_text(FSDP2)
        two = ("--config", str(tmp_path / "fsdp2.yaml"))
    fit_subprocess(tiny_args(tmp_path / "two", shards, max_steps=4, extra=(*clip, *two)), tmp_path)
    for tag in ("optim/grad_norm", "train/ce_loss"):
        one, two = scalars(tmp_path / "one", tag), scalars(tmp_path / "two", tag)
        assert [s for s, _ in one] == [s for s, _ in two] == [0, 1, 2, 3]
        # both are the whole global batch's (all micro-batches and ranks), up to reduction order
        assert [v for _, v in two] == pytest.approx([v for _, v in one], rel=1e-4)
    assert all(v > 0.05 for _, v in scalars(tmp_path / "one", "optim/grad_norm"))  # clipping was active
    tokens_one = scalars(tmp_path / "one", "throughput/tokens_seen")[-1][1]
    assert scalars(tmp_path / "two", "throughput/tokens_seen")[-1][1] == tokens_one == 4 * 8 * 64


def test_resume_on_another_world_size_and_micro_batch(shards, tmp_path):
    """The batch plan is rebuilt at resume: 1 rank x micro 4 x accum 2 for 2 steps, then 2 ranks x micro 2
    x accum 2 to step 4, at the same global batch, continue the uninterrupted run's losses."""
    fit_subprocess(tiny_args(tmp_path / "straight", shards, max_steps=4), tmp_path)
    stopped = tmp_path / "stopped"
    fit_subprocess(
        tiny_args(stopped, shards, max_steps=2, extra=("--checkpoint.every_n_train_steps", "2")), tmp_path
    )
    resume = ("--ckpt_path", str(stopped / "ckpt" / "step0000002.ckpt"), "--data.micro_batch_size", "2",
              "--trainer.devices", "2", "--trainer.strategy", "ddp")  # fmt: skip
    fit_subprocess(tiny_args(stopped, shards, max_steps=4, extra=resume), tmp_path)
    a, b = scalars(tmp_path / "straight", "train/ce_loss"), scalars(stopped, "train/ce_loss")
    assert [s for s, _ in a] == [s for s, _ in b] == [0, 1, 2, 3]
    assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=1e-5)
    assert scalars(stopped, "throughput/tokens_seen")[-1][1] == 4 * 8 * 64
