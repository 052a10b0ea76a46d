"""``olmo2-lit compare`` on event files written with TensorBoard's writer: every number of its CSV against
a hand computation from the values TensorBoard's EventAccumulator reads back (mean, sample std, Student t
95% interval from the printed t table), spike counts of a planted spike, a directory without event files,
tags not shared, a resumed plain ``fit`` output (two versions), and the data server's reading against
EventAccumulator's."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from research_helpers import accumulator_scalars, write_events

from olmo2_lit.cli import main
from olmo2_lit.research import scalars as reader

CE, GN = "train/ce_loss", "optim/grad_norm"
T975 = {1: 12.706204736, 2: 4.302652730}  # Student t 0.975 quantiles, df 1 and 2 (printed tables)


def _curves(seed: int, steps: int = 300) -> dict[str, dict[int, float]]:
    rng = np.random.default_rng(seed)
    return {
        CE: {s: float(5 - s / 100 + 0.05 * rng.standard_normal()) for s in range(steps)},
        GN: {s: float(1 + 0.05 * rng.standard_normal()) for s in range(steps)},
    }


@pytest.fixture
def sweep_dir(tmp_path):
    root = tmp_path / "sweep"
    for variant, seeds in (("a", (0, 1, 2)), ("b", (0, 1))):
        for seed in seeds:
            curves = _curves(10 * (variant == "b") + seed)
            if variant == "a" and seed == 1:
                curves[GN][200] = 100.0  # one grad-norm spike
            if variant == "b" and seed == 0:
                curves["extra/only_here"] = {0: 1.0}
            write_events(root / variant / f"seed{seed}" / "tb" / "version_0", curves)
    (root / "c" / "seed0").mkdir(parents=True)  # a run that never logged
    return root


def _rows(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path) as f:
        return {(r["variant"], r["tag"], r["at"]): r for r in csv.DictReader(f)}


def _hand(values: list[float]) -> tuple[float, float, float, float]:
    mean, std = statistics.mean(values), statistics.stdev(values)
    half = T975[len(values) - 1] * std / math.sqrt(len(values))
    return mean, std, mean - half, mean + half


def test_table_matches_a_hand_computation(sweep_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    main(["compare", str(sweep_dir), "--out", str(out), "--at", "[100, 250]", "--plots", f"[{CE}]"])
    printed = capsys.readouterr()
    assert "c/seed0: no TensorBoard event files" in printed.err
    assert "Left out (not logged by every run): extra/only_here" in printed.out
    rows = _rows(out / "compare.csv")
    seeds = {"a": (0, 1, 2), "b": (0, 1)}
    for variant, members in seeds.items():
        for tag in (CE, GN):
            read = [
                accumulator_scalars(sweep_dir / variant / f"seed{s}" / "tb" / "version_0", tag)
                for s in members
            ]
            for at, pick in (("100", 100), ("250", 250), ("end", 299)):
                row = rows[(variant, tag, at)]
                expected = _hand([r[pick] for r in read])
                got = tuple(float(row[k]) for k in ("mean", "std", "ci95_low", "ci95_high"))
                assert row["n"] == str(len(members))
                assert got == pytest.approx(expected, rel=1e-9), (variant, tag, at)
    with open(out / "spikes.csv") as f:
        spikes = {(r["variant"], r["seed"]): r for r in csv.DictReader(f)}
    assert spikes[("a", "1")]["olmo_core_grad_norm"] == "1"
    assert spikes[("a", "1")]["olmo_core_steps"] == "200"
    assert {r["olmo_core_grad_norm"] for k, r in spikes.items() if k != ("a", "1")} == {"0"}
    assert (
        spikes[("a", "1")]["paper_score_loss"] == ""
    )  # 300 values: the paper's 1,000-value window never fills
    assert (out / "train_ce_loss.png").stat().st_size > 0
    assert "![train/ce_loss](train_ce_loss.png)" in (out / "compare.md").read_text()


def test_resumed_plain_fit_output_is_one_run_later_version_wins(tmp_path, capsys):
    runs = tmp_path / "runs" / "olmo2"
    write_events(runs / "version_0", {CE: {s: 10.0 + s for s in range(0, 200)}})
    write_events(runs / "version_1", {CE: {s: 1.0 + s for s in range(150, 300)}})  # resumed from step 150
    out = tmp_path / "cmp"
    main(
        ["compare", str(runs), "--out", str(out), "--tags", f"[{CE}]", "--at", "[149, 150]", "--plots", "[]"]
    )
    rows = _rows(out / "compare.csv")
    name = str(runs)
    assert float(rows[(name, CE, "149")]["mean"]) == 10.0 + 149
    assert float(rows[(name, CE, "150")]["mean"]) == 1.0 + 150
    assert float(rows[(name, CE, "end")]["mean"]) == 1.0 + 299
    assert rows[(name, CE, "end")]["n"] == "1" and rows[(name, CE, "end")]["std"] == ""


def test_data_server_reads_what_event_accumulator_reads(sweep_dir):
    dirs = [sweep_dir / "a" / "seed0", sweep_dir / "b" / "seed0"]
    fast = reader.read_scalars(dirs)
    slow = [reader._join(reader._read_accumulator(dirs, None)[i]) for i in range(2)]
    for f, s in zip(fast, slow):
        assert sorted(f) == sorted(s)
        for tag in f:
            np.testing.assert_array_equal(f[tag][0], s[tag][0])
            np.testing.assert_array_equal(f[tag][1], s[tag][1])


def test_align_by_tokens(tmp_path):
    for seed, per_step in ((0, 100), (1, 200)):  # seed 1 sees twice the tokens per step
        scalars = {
            CE: {s: float(s) for s in range(50)},
            "throughput/tokens_seen": {s: per_step * (s + 1) for s in range(50)},
        }
        write_events(tmp_path / "sweep" / "v" / f"seed{seed}", scalars)
    out = tmp_path / "cmp"
    main(
        [
            "compare",
            str(tmp_path / "sweep"),
            "--out",
            str(out),
            "--x",
            "tokens",
            "--at",
            "[2000]",
            "--tags",
            f"[{CE}]",
            "--plots",
            "[]",
        ]
    )
    row = _rows(out / "compare.csv")[("v", CE, "2000")]
    assert float(row["mean"]) == pytest.approx((19 + 9) / 2)  # step 19 of seed 0, step 9 of seed 1


def test_unshared_requested_tag_and_missing_dir_are_named(sweep_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", str(sweep_dir), "--out", str(tmp_path / "o"), "--tags", "[extra/only_here]"])
    assert "none of the tags ['extra/only_here'] was logged by every run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert "not a directory" in capsys.readouterr().err
