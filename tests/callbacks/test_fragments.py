"""The experiments/stability fragments layer on a recipe and on each other with --config."""

from pathlib import Path

import pytest
import yaml

from olmo2_lit.lightning_cli import OLMo2CLI

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
FRAGMENTS = ["spike_monitor", "skip_step", "lr_backoff", "rollback", "diagnostics"]


def test_all_fragments_layer_on_the_quickstart(capsys):
    """Guards against a fragment that replaces the recipe's callbacks or optimizer settings instead of
    adding to them (callbacks+ appends; the optimizer swap keeps the recipe's LR)."""
    layers = [EXPERIMENTS / "quickstart.yaml", *(EXPERIMENTS / "stability" / f"{n}.yaml" for n in FRAGMENTS)]
    args = ["fit", *(a for p in layers for a in ("--config", str(p))), "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        OLMo2CLI(args=args)
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    names = [cb["class_path"].rsplit(".", 1)[1] for cb in cfg["trainer"]["callbacks"]]
    assert names == ["PrintSamples", "SpikeMonitor", "LRBackoff", "Rollback", "Diagnostics"]
    optimizer = cfg["model"]["optimizer"]
    assert optimizer["class_path"] == "olmo2_lit.train.skip_step.SkipStepAdamW"
    assert optimizer["init_args"]["lr"] == 3e-3 and optimizer["init_args"]["rolling_interval_length"] == 128
    assert cfg["nonfinite"]["action"] == "stop"  # the guard is on by default
