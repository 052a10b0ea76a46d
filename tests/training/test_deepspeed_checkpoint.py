"""A real DeepSpeed ZeRO-3 checkpoint (written by DeepSpeed itself, 2 CPU ranks over gloo) consolidates
into one file that ``convert to-hf`` exports and a DDP run starts from.

Lightning's DeepSpeed strategy runs only on CUDA, so ``deepspeed_zero3_run.py`` drives DeepSpeed's engine
the way that strategy does (same module, same save call); DeepSpeed's CPU accelerator needs no oneCCL.
Guards against a consolidation that loses, renames or reshapes weights (each is compared with the engine's
own gathered parameters, bitwise), against key prefixes the exporter or the model loader do not accept,
and against a resume from weights without optimizer state that fails deep in Lightning (a ``KeyError``)
or silently restarts the optimizer.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import fit, tiny_args

from olmo2_lit.errors import CheckpointError
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.consolidate import consolidate
from olmo2_lit.weights.pretrained import read_checkpoint

pytest.importorskip("deepspeed", reason="pip install deepspeed (olmo2_lit[deepspeed]) to run it")

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def zero3(tmp_path_factory):
    """The ZeRO-3 checkpoint directory and the full weights the engine held when it was saved."""
    out = tmp_path_factory.mktemp("zero3")
    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(HERE / "deepspeed_zero3_run.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list((out / ".olmo2_staging").iterdir())  # published: nothing left in staging
    initial = torch.load(out / "initial.pt", weights_only=True)
    torch.manual_seed(0)  # the engine partitioned OLMo 2's CPU init, not torch's defaults
    built = Transformer(
        ModelConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden=64, vocab_size=256).resolved()
    )
    assert all(torch.equal(initial[f"model.{k}"], v) for k, v in built.state_dict().items())
    return out / "zero3.ckpt", torch.load(out / "reference.pt", weights_only=True)


@pytest.mark.slow
def test_zero3_checkpoint_consolidates_and_exports_to_hf(zero3, tmp_path, capsys):
    ckpt_dir, reference = zero3
    assert sorted(p.name for p in (ckpt_dir / "checkpoint").iterdir()) == [
        f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")
    ]
    one_file = tmp_path / "one.ckpt"
    consolidate(checkpoint=str(ckpt_dir), out=str(one_file))
    ckpt = torch.load(one_file, weights_only=False)
    assert "optimizer_states" not in ckpt and ckpt["global_step"] == 2
    assert ckpt["state_dict"].keys() == reference.keys()
    assert all(torch.equal(ckpt["state_dict"][k], reference[k]) for k in reference)

    _, ours = read_checkpoint(one_file)  # what convert to-hf and model.init_from read
    assert ours.keys() == {k.removeprefix("model.") for k in reference}
    from olmo2_lit.cli import main

    hf = tmp_path / "hf"
    main(["convert", "to-hf", "--checkpoint", str(one_file), "--out_dir", str(hf), "--dtype", "float32",
          "--eos_token_id", "0"])  # fmt: skip
    _, exported = read_checkpoint(hf)  # HF names mapped back to ours
    assert all(torch.equal(exported[k], ours[k]) for k in ours)

    with pytest.raises(CheckpointError, match="DeepSpeed checkpoint directory; make one file"):
        read_checkpoint(ckpt_dir)


def test_ddp_resume_from_zero3_weights_is_refused_and_a_weights_only_restart_starts_from_them(
    zero3, shards, tmp_path
):
    ckpt_dir, reference = zero3
    one_file = tmp_path / "one.ckpt"
    consolidate(checkpoint=str(ckpt_dir), out=str(one_file))
    with pytest.raises(CheckpointError, match="--model.init_optimizer_state false"):
        fit(tiny_args(tmp_path / "resume", shards, max_steps=3, extra=("--ckpt_path", str(one_file))))

    out = tmp_path / "initial.pt"
    restart = ("--model.init_from", str(one_file), "--model.init_optimizer_state", "false",
               "--trainer.callbacks+=initial_weights.SaveInitialWeights",
               f"--trainer.callbacks.out={out}")  # fmt: skip
    fit(tiny_args(tmp_path / "restart", shards, max_steps=1, extra=restart))
    initial = torch.load(out, weights_only=True)
    assert initial.keys() == {k.removeprefix("model.") for k in reference}
    assert all(torch.equal(initial[k.removeprefix("model.")], v) for k, v in reference.items())
