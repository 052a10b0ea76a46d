import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    from olmo2_lit.data.datamodule import TokenShardDataModule
    from olmo2_lit.data.mixture import DataSource

    def rss_mb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024

    paths = []
    for i in range(3):  # 3 x 1 GiB of uint32 ids, sparse: no disk used, but every page is real to mmap
        path = f"{sys.argv[1]}/part-{i}.npy"
        with open(path, "wb") as f:
            f.truncate(1 << 30)
        paths.append(path)
    dm = TokenShardDataModule(vocab_size=100278, dtype="uint32", train_sources=[DataSource(paths=paths)],
                              sequence_length=4096, global_batch_size=64, micro_batch_size=8, seed=0)
    dm.setup("fit")
    before = rss_mb("VmRSS")
    instances = 0
    for batch in dm.train_dataloader():
        instances += batch["input_ids"].shape[0]
        if instances >= 8_000:  # 8k random instances x 16 KiB = 125 MiB of distinct shard pages touched
            break
    print(json.dumps({"before": before, "peak": rss_mb("VmHWM"), "instances": instances,
                      "epoch_instances": dm._train.epoch_size}))
""")


def test_rss_stays_flat_while_reading_a_3_gib_shard_set(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["epoch_instances"] == 3 * (1 << 30) // 4 // 4096
    assert stats["peak"] < 1024, stats  # issue 3: under 1 GiB
    assert stats["peak"] - stats["before"] < 64, stats  # the 125 MiB read must not stay resident
