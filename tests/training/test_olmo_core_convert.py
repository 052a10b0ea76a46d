"""Runs move between OLMo-core's trainer and olmo2_lit (``convert from-olmo-core`` / ``to-olmo-core``).

A step directory saved by ai2-olmo-core 3.0.0's own Trainer (2 ranks) is converted and continued here on 1
rank for 20 steps; OLMo-core continues the same directory with its own trainer. Every step's CE, z-loss,
grad norm and LR, and the final weights, agree within 1e-5. Then our checkpoint goes back: OLMo-core's
``Trainer.load_checkpoint`` takes the exported directory and its next 20 steps equal ours.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_olmo_core_run import (
    RTOL,
    base_spec,
    initial_weights,
    make_corpus,
    olmo2_lit_args,
    olmo_core_fit,
    worst_relative,
    worst_weight_difference,
)
from training_helpers import fit_subprocess, load_weights

SAVE, END, EXPORT_END = 6, 26, 46


def convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "olmo2_lit", "convert", *args], capture_output=True, text=True, timeout=300
    )


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _ours_resume(root: Path, shards, init, spec, ckpt: Path, *, steps: int) -> None:
    args = olmo2_lit_args(root, shards, init, {**spec, "steps": spec["steps"]})
    for flag in ("--trainer.max_steps", "--checkpoint.every_n_train_steps"):
        args[args.index(flag) + 1] = str(steps)  # last.ckpt at the end
    fit_subprocess([*args, "--ckpt_path", str(ckpt)], root.parent, timeout=900)


@pytest.mark.slow
def test_olmo_core_checkpoint_continues_here_and_back(tmp_path):
    shards = make_corpus(tmp_path / "shards", repeats=True)
    init = initial_weights(tmp_path / "init")
    kw = dict(
        optimizer="skip_step_adamw", optimizer_args={"rolling_interval_length": 8}, instance_filter=True
    )
    spec = base_spec(shards, tmp_path / "oc_first", init, steps=EXPORT_END, **kw)

    # OLMo-core, 2 ranks, saves step 6 and stops; then continues that directory on 1 rank to step 26
    olmo_core_fit({**spec, "save_steps": [SAVE], "stop_at": SAVE}, tmp_path, ranks=2)
    step_dir = tmp_path / "oc_first" / "save" / f"step{SAVE}"
    before = tree_hash(step_dir)
    olmo_core_fit(
        {**spec, "out": str(tmp_path / "oc_cont"), "init": None, "load_from": str(step_dir), "stop_at": END},
        tmp_path,
    )

    # ours: convert, continue on 1 rank to step 26
    ckpt = tmp_path / "from_olmo_core.ckpt"
    proc = convert("from-olmo-core", "--step_dir", str(step_dir), "--out", str(ckpt), "--n_heads", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert tree_hash(step_dir) == before  # the source is only read
    ours = tmp_path / "ours"
    _ours_resume(ours, shards, init, spec, ckpt, steps=END)

    theirs = json.loads((tmp_path / "oc_cont" / "metrics.json").read_text())
    theirs = {s: m for s, m in theirs.items() if int(s) > SAVE}
    worst = worst_relative(ours, theirs, first_step=SAVE + 1)
    our_ckpt = ours / "ckpt" / "last.ckpt"
    weights = worst_weight_difference(load_weights(our_ckpt), torch.load(tmp_path / "oc_cont" / "final.pt"))
    print(f"from-olmo-core: worst relative per metric {worst}; worst weight difference {weights:.2e}")
    assert max(worst.values()) < RTOL, worst
    assert weights < 1e-5

    # back: our step-26 checkpoint -> OLMo-core, which continues to 46; we continue the same .ckpt
    exported = tmp_path / "exported" / f"step{END}"
    proc = convert("to-olmo-core", "--checkpoint", str(our_ckpt), "--out", str(exported), "--dtype", "uint16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    olmo_core_fit(
        {**spec, "out": str(tmp_path / "oc_back"), "init": None, "load_from": str(exported)}, tmp_path
    )
    back = tmp_path / "ours_back"
    _ours_resume(back, shards, init, spec, our_ckpt, steps=EXPORT_END)
    theirs = json.loads((tmp_path / "oc_back" / "metrics.json").read_text())
    theirs = {s: m for s, m in theirs.items() if int(s) > END}
    worst = worst_relative(back, theirs, first_step=END + 1)
    weights = worst_weight_difference(
        load_weights(back / "ckpt" / "last.ckpt"), torch.load(tmp_path / "oc_back" / "final.pt")
    )
    print(f"to-olmo-core: worst relative per metric {worst}; worst weight difference {weights:.2e}")
    assert max(worst.values()) < RTOL, worst
    assert weights < 1e-5
