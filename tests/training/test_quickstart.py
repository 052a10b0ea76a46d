"""The quickstart recipe, for a few steps, from an empty directory: it prepares its own data."""

from pathlib import Path

from olmo2_lit.lightning_cli import OLMo2CLI

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"


def test_quickstart_runs_a_few_steps(tmp_path, monkeypatch, capsys):
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
