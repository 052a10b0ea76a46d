"""A grid naming a missing fragment, an unknown override or a duplicate variant fails before any run
starts (nothing is written under --out), with a message naming it; the SLURM dry run prints the job array
built from the template and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from research_helpers import tiny_base

from olmo2_lit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _sweep(tmp_path, grid_text: str, *extra: str) -> Path:
    grid = tmp_path / "grid.yaml"
    grid.write_text(grid_text)
    main(["sweep", "--grid", str(grid), "--out", str(tmp_path / "out"), *extra])
    return tmp_path / "out"


@pytest.fixture
def base(tmp_path, shards, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tiny_base(tmp_path / "base.yaml", shards)


@pytest.mark.parametrize(
    "variants, message",
    [
        ("  a: []\n  b: [nope.yaml]\n", "variant 'b' names a missing fragment: nope.yaml"),
        ("  a: []\n  a: [base.yaml]\n", "duplicate key 'a' (line 5)"),
        ("  a: []\n  b: [{model.config.bogus: 1}]\n", "variant 'b' (seed 0): "),
        ("  a: []\n  'b c': []\n", "variant name 'b c' must be"),
    ],
)
def test_bad_grid_fails_before_any_run_naming_it(base, tmp_path, capsys, variants, message):
    with pytest.raises(SystemExit) as exit_:
        _sweep(tmp_path, f"base: [base.yaml]\nseeds: [0]\nvariants:\n{variants}")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    if "bogus" in variants:
        assert "model.config.bogus" in err
    assert not (tmp_path / "out").exists()


def test_slurm_dry_run_prints_the_array_from_the_template(base, tmp_path, capsys):
    template = ROOT / "experiments" / "slurm" / "single_node.sbatch"
    grid = "base: [base.yaml]\nseeds: [0, 1]\nvariants:\n  a: []\n  b: [{model.config.qk_norm: false}]\n"
    out = _sweep(tmp_path, grid, "--slurm", "true", "--dry_run", "true", "--template", str(template))
    script = capsys.readouterr().out
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-3\n" in script
    assert "#SBATCH --gres=gpu:8\n" in script and "#SBATCH --job-name=olmo2-1b" not in script
    assert "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-8}" in script
    assert f"  3) RUN_DIR={out / 'b' / 'seed1'}" in script
    assert "--model.config.qk_norm=false --seed_everything=1" in script
    assert not out.exists()


def test_other_seeds_configs_equal_a_full_parse(base, tmp_path):
    """Configs are parsed once per variant; another seed's, set in a copy, equals its own full parse."""
    from olmo2_lit.research.grid import load_grid
    from olmo2_lit.research.sweep import resolve_config, resolve_configs

    (tmp_path / "grid.yaml").write_text(
        "base: [base.yaml]\nseeds: [0, 3]\nvariants:\n  a: [{model.config.qk_norm: false}]\n"
    )
    cells = load_grid(tmp_path / "grid.yaml").cells(tmp_path / "out")
    configs = resolve_configs(cells)
    assert configs["a/seed3"] == resolve_config(cells[1]) != configs["a/seed0"]
    assert configs["a/seed3"]["seed_everything"] == 3
