"""Per-process memory of the epoch order as the instance count grows (a script, not a test).

Sparse raw uint8 shards (no disk used) with 16-token instances stand in for OLMo-mix: only the instance
count matters here. Each measurement runs in a fresh process, as one rank of 8 would:

- ``builder``: the node's first process, which builds the order file (rank 0);
- ``reader``: any other process (rank 3), which finds the file built and reads 500 micro-batches each
  from the start, the middle and the end of the epoch;
- ``in memory``: the order held in the process, as before the order file (``order_dir`` unset, no
  trainer); it reads from the start only, since each ``iter()`` builds the order again.

Reported: RSS after ``setup("fit")`` (``before``), the peak (``VmHWM``) and the RSS at the end, in MB.

    python benchmarks/bench_order.py --instances 1000000,200000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, sys, time, types
    from olmo2_lit.data.datamodule import TokenShardDataModule
    from olmo2_lit.data.mixture import DataSource

    def rss_mb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024

    shards, order_dir, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # in memory, every iter() rebuilds the order, so read only the start there (one build, like the others)
    fractions = (0.0, 0.5, 0.99) if order_dir != "-" else (0.0,)
    dm = TokenShardDataModule(vocab_size=256, dtype="uint8", train_sources=[DataSource(paths=[shards])],
                              sequence_length=16, global_batch_size=512, micro_batch_size=8, seed=6198,
                              order_dir=None if order_dir == "-" else order_dir)
    dm.trainer = types.SimpleNamespace(global_rank=rank, world_size=8, training=True)
    dm.setup("fit")
    before, start, epoch = rss_mb("VmRSS"), time.perf_counter(), dm._train.epoch_size
    read = 0
    for fraction in fractions:  # the start, the middle and the end of the epoch
        dm.position.instances = int(epoch * fraction) // 512 * 512
        for i, batch in enumerate(dm.train_dataloader()):
            read += batch["input_ids"].shape[0]
            if i == 500:
                break
    print(json.dumps({"instances": epoch, "before": before, "peak": rss_mb("VmHWM"), "end": rss_mb("VmRSS"),
                      "instances_read": read, "seconds": time.perf_counter() - start}))
""")


def sparse_shards(directory: Path, instances: int, files: int = 4) -> str:
    """``instances`` 16-token uint8 instances over ``files`` sparse files of zeros."""
    directory.mkdir(parents=True, exist_ok=True)
    per_file = -(-instances // files)
    for i in range(files):
        with open(directory / f"part-{i:02d}.npy", "wb") as f:
            f.truncate(min(per_file, instances - i * per_file) * 16)
    return str(directory)


def run(shards: str, order_dir: str, rank: int) -> dict:
    command = [sys.executable, "-c", CHILD, shards, order_dir, str(rank)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="1000000,200000000", help="comma-separated instance counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.instances.split(",")]:
            shards = sparse_shards(Path(tmp) / f"shards-{n}", n)
            order_dir = str(Path(tmp) / f"order-{n}")
            roles = (("builder", order_dir, 0), ("reader", order_dir, 3), ("in memory", "-", 3))
            for role, directory, rank in roles:
                r = run(shards, directory, rank)
                print(
                    f"{r['instances']:>12,} instances  {role:<10} before {r['before']:7.1f} MB  peak "
                    f"{r['peak']:7.1f} MB (+{r['peak'] - r['before']:6.1f})  end {r['end']:7.1f} MB "
                    f"(+{r['end'] - r['before']:6.1f})  {r['seconds']:5.1f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
