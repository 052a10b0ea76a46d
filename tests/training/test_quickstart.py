"""The quickstart recipe, for a few steps, from an empty directory: it prepares its own data."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from olmo2_lit.lightning_cli import OLMo2CLI

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"


def test_quickstart_runs_a_few_steps(tmp_path, monkeypatch, capsys):
    """Guards the recipe end to end from an empty directory: data prepared on first run, training,
    samples, checkpoint, and a validation pass whose logged loss equals the CE of the trained model
    on the held-out batch computed here (a held-out split too small to give a batch would fail)."""
    monkeypatch.chdir(tmp_path)
    cli = OLMo2CLI(
        args=[
            "fit",
            "--config",
            str(QUICKSTART),
            "--trainer.max_steps",
            "3",
            "--trainer.enable_progress_bar",
            "false",
            "--data.prepare_if_missing.max_input_bytes",
            "400000",
            # the sample holds a dozen files (documents); hold out enough of them for a validation batch
            "--data.prepare_if_missing.val_fraction",
            "0.25",
            "--checkpoint.every_n_train_steps",
            "3",
            "--trainer.val_check_interval",
            "3",
            "--trainer.limit_val_batches",
            "1",
        ]
    )
    assert cli.trainer.global_step == 3
    assert (tmp_path / "data" / "quickstart" / "manifest.json").exists()
    assert (tmp_path / "data" / "quickstart" / "tokenizer.json").exists()
    assert list((tmp_path / "runs").rglob("last.ckpt"))
    out = capsys.readouterr().out
    assert (
        "=== samples ===" in out and "TensorBoard logs: runs/olmo2/version_0" in out and "checkpoint:" in out
    )
    assert cli.model.config.vocab_size == 4096  # linked from data.vocab_size

    # Validation ran once, at step 3, over one batch, with the weights the run ended on.
    metrics = cli.trainer.callback_metrics
    assert "val/ce_loss" in metrics and "val/perplexity" in metrics, sorted(metrics)
    batch = next(iter(cli.datamodule.val_dataloader()))
    with torch.no_grad():
        logits = cli.model.model(batch["input_ids"], batch.get("doc_lens"))
    expected = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    assert float(metrics["val/ce_loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(metrics["val/perplexity"]) == pytest.approx(math.exp(float(expected)), rel=1e-5)
    assert float(expected) < math.log(4096) + 1  # a trained-for-3-steps model, not garbage
