import json
import subprocess
import sys
import textwrap

import numpy as np

from olmo2_lit.data.sampler import epoch_order
from olmo2_lit.prepare.writer import RollingShardWriter

# Lightning's DDP launcher re-runs the script, so the run lives in its own file (LIGHTNING.md §2).
SCRIPT = textwrap.dedent("""
    import json, sys
    import lightning as L, torch
    from olmo2_lit.data.datamodule import TokenShardDataModule
    from olmo2_lit.data.mixture import DataSource

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.emb, self.seen = torch.nn.Embedding(512, 4), []
        def training_step(self, batch, batch_idx):
            self.seen.append(batch["index"].tolist())
            return self.emb(batch["input_ids"]).pow(2).mean()
        def validation_step(self, batch, batch_idx):
            self.log("val", self.emb(batch["input_ids"]).mean(), sync_dist=True)
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = TokenShardDataModule(vocab_size=512, train_sources=[DataSource(paths=[sys.argv[1]])], val_paths=[sys.argv[1]],
                              sequence_length=16, global_batch_size=8, micro_batch_size=2, seed=3, num_workers=1)
    module = Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=4, logger=False,
                        accumulate_grad_batches=dm.batch_plan.with_world_size(2).accumulation, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, val_check_interval=2)
    trainer.fit(module, datamodule=dm)
    with open(f"result-{trainer.global_rank}.json", "w") as f:  # ranks share stdout: one file each
        json.dump([module.seen, dm.state_dict()["tokens"]], f)
""")


def test_real_ddp_ranks_split_each_global_batch(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 512, 680)
    w = RollingShardWriter(tmp_path / "train", prefix="part", shard_size_tokens=10_000, vocab_size=512, eos_token_id=0,
                           tokenizer="t.json", tokenizer_sha256="0" * 64)
    w.write(tokens)
    w.close()
    (tmp_path / "run.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "train")], capture_output=True,
                         text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    results = [json.loads((tmp_path / f"result-{r}.json").read_text()) for r in (0, 1)]
    order = epoch_order([(0, 42)], [42], seed=3, epoch=0)  # one shard of 680 tokens: 42 instances of 16
    for step in range(4):  # 2 micro-batches of 2 per rank per step of 8
        got = [sum(results[r][0][2 * step:2 * step + 2], []) for r in (0, 1)]
        assert sorted(got[0] + got[1]) == sorted(order[8 * step:8 * step + 8].tolist())
        assert not set(got[0]) & set(got[1])
    assert results[0][1] == results[1][1] == 4 * 8 * 16  # every rank counts all ranks' tokens
