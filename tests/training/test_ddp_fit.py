"""Two ranks on CPU (gloo), run as subprocesses: 2 ranks x micro 4 must train like 1 rank x micro 4
x accum 2, under DDP and under FSDP2 (Lightning's ModelParallelStrategy with ``fully_shard``).

Same global batches and the same global grad norm before clipping (up to reduction order), with
clipping active, so every later step depends on the clipping being right on every rank.
"""

import subprocess
import sys

import pytest
from training_helpers import scalars, tiny_args


def _run(args, cwd):
    # olmo2-lit via -m: DDP's launcher re-runs this same command for rank 1.
    proc = subprocess.run(
        [sys.executable, "-m", "olmo2_lit", "fit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


FSDP2 = """trainer:
  devices: 2
  strategy:
    class_path: lightning.pytorch.strategies.ModelParallelStrategy
    init_args: {data_parallel_size: 2, tensor_parallel_size: 1, save_distributed_checkpoint: false}
"""


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_ranks_match_one_rank_with_accumulation(shards, tmp_path, strategy):
    clip = ("--trainer.gradient_clip_val", "0.05")  # small, so clipping is active and must agree
    _run(tiny_args(tmp_path / "one", shards, max_steps=4, extra=clip), tmp_path)
    if strategy == "ddp":
        two = ("--trainer.devices", "2", "--trainer.strategy", "ddp")
    else:
        (tmp_path / "fsdp2.yaml").write_text(FSDP2)
        two = ("--config", str(tmp_path / "fsdp2.yaml"))
    _run(tiny_args(tmp_path / "two", shards, max_steps=4, extra=(*clip, *two)), tmp_path)
    for tag in ("optim/grad_norm", "train/ce_loss"):
        one, two = scalars(tmp_path / "one", tag), scalars(tmp_path / "two", tag)
        assert [s for s, _ in one] == [s for s, _ in two] == [0, 1, 2, 3]
        # rank 0 logs its own micro-batch loss; the grad norm is global on every rank
        if tag == "optim/grad_norm":
            assert [v for _, v in two] == pytest.approx([v for _, v in one], rel=1e-4)
            assert all(v > 0.05 for _, v in one)
    tokens_one = scalars(tmp_path / "one", "throughput/tokens_seen")[-1][1]
    assert scalars(tmp_path / "two", "throughput/tokens_seen")[-1][1] == tokens_one == 4 * 8 * 64
