"""Two ranks on CPU (gloo), as subprocesses: detection, skip and rollback under DDP and FSDP2.

Every rank must take the same decision from the same global loss and grad norm, or the ranks diverge
(DDP) or deadlock (FSDP2).
"""

import json
from pathlib import Path

from stability_config import MONITOR, layer, probe, skip_step_optimizer
from test_rollback import check_rollback, rollback_callbacks
from training_helpers import fit_subprocess, scalars, tiny_args

HERE = Path(__file__).parent
FSDP2 = {
    "devices": 2,
    "strategy": {
        "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
        "init_args": {
            "data_parallel_size": 2,
            "tensor_parallel_size": 1,
            "save_distributed_checkpoint": False,
        },
    },
}


def _run(args, cwd):
    # The probes are imported by class_path in both ranks: put their folders on the path.
    fit_subprocess(args, cwd, pythonpath=(HERE, HERE.parent / "training"))


def _records(root: Path) -> list[dict]:
    return [json.loads((root / f"step_record_rank{r}.json").read_text()) for r in range(2)]


def test_ddp_detects_skips_and_rolls_back_on_every_rank(shards, tmp_path):
    """Guards against a decision taken on one rank only: the spike at step 10 is skipped by both ranks'
    SkipStepAdamW and rolls both back to the step-9 checkpoint; the run reaches max_steps."""
    callbacks = [probe("StepRecorder", step=10), *rollback_callbacks(tmp_path)]
    ddp = {"devices": 2, "strategy": "ddp"}
    extra = layer(tmp_path / "ddp.yaml", callbacks, optimizer=skip_step_optimizer(), trainer=ddp)
    _run(tiny_args(tmp_path, shards, max_steps=18, extra=tuple(extra)), tmp_path)
    assert [s for s, v in scalars(tmp_path, "spike/is_spike") if v] == [10]
    assert [s for s, v in scalars(tmp_path, "optim/step_skipped") if v] == [10]
    assert all(
        r["weights_unchanged"] and r["moments_unchanged"] and r["steps_unchanged"] for r in _records(tmp_path)
    )
    check_rollback(tmp_path, ranks=2)


def test_fsdp2_skip_decision_is_taken_on_both_shards(shards, tmp_path):
    """Guards against the skip factor or the history being rank-local under FSDP2 (DTensor shards):
    both ranks skip step 10 and leave their shards and moments unchanged."""
    callbacks = [MONITOR, probe("ScaleGradsAt", steps=[10]), probe("StepRecorder", step=10)]
    extra = layer(tmp_path / "fsdp2.yaml", callbacks, optimizer=skip_step_optimizer(), trainer=FSDP2)
    _run(tiny_args(tmp_path, shards, max_steps=12, extra=tuple(extra)), tmp_path)
    assert [s for s, v in scalars(tmp_path, "spike/is_spike") if v] == [10]
    assert [s for s, v in scalars(tmp_path, "optim/step_skipped") if v] == [10]
    assert all(
        r["weights_unchanged"] and r["moments_unchanged"] and r["steps_unchanged"] for r in _records(tmp_path)
    )


def test_fsdp2_rolls_back_on_both_shards(shards, tmp_path):
    """Guards against a rollback that cannot restart a sharded fit: the restart from the step-9 checkpoint
    goes through FSDP2's own resume in the same processes, on both ranks, and the run reaches max_steps."""
    extra = layer(tmp_path / "fsdp2.yaml", rollback_callbacks(tmp_path), trainer=FSDP2)
    _run(tiny_args(tmp_path, shards, max_steps=18, extra=tuple(extra)), tmp_path)
    check_rollback(tmp_path, ranks=2)
