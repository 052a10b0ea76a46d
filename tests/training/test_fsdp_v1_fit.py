"""FSDP (v1) runs of ``olmo2-lit fit`` on 2 CPU ranks (gloo), through Lightning's own ``FSDPStrategy`` and
torch's ``FullyShardedDataParallel`` (``cpu_fsdp.py`` lifts only their need for CUDA), with
``experiments/strategies/fsdp.yaml`` as users run it: one unit per block, activation checkpointing on.
Parameters are fp32 here so runs compare bitwise (bf16 compute is checked on its own, below).

Guards against:
- an FSDP v1 run that trains differently from one process at the same global batch (wrapping, clipping
  by the global norm, gradient reduction), per-step CE and grad norm compared with clipping active;
- a sharded resume that is not exact (bitwise, against the uninterrupted FSDP v1 run), a checkpoint
  directory written in place instead of through the staging directory, and a consolidation that
  loses or misorders Adam's state (one process continues from it);
- a one-file checkpoint (one device's, DDP's, ``consolidate``'s) whose Adam state FSDP v1 hands to the
  wrong parameters: Lightning's loader numbers them in module order, torch in param-group order, and
  OLMo 2's groups put the embeddings last (it failed on shapes); and FSDP v1's own ``full`` files
  (numbered in module order) that one process cannot continue, or that the loader misreads;
- a mixed-precision policy that is configured but not applied, or that casts the stored weights or the
  gradients the optimizer sees.
"""

import json
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import fit_subprocess, make_shards, scalars, tiny_args

from olmo2_lit.errors import CheckpointError
from olmo2_lit.train.checkpoint_publish import STAGING
from olmo2_lit.train.full_load import name_keyed
from olmo2_lit.weights.consolidate import consolidate

HERE = Path(__file__).resolve().parent
FRAGMENT = str(HERE.parents[1] / "experiments" / "strategies" / "fsdp.yaml")
CLIP = ("--trainer.gradient_clip_val", "0.05", "--checkpoint.every_n_train_steps", "2")
FP32 = ("--trainer.strategy.init_args.param_dtype", "float32")
TAGS = ("train/ce_loss", "optim/grad_norm")


def fsdp_fit(root: Path, shards: Path, *, devices: int = 2, extra: tuple = ()) -> Path:
    args = ("--config", FRAGMENT, "--trainer.devices", str(devices), *CLIP, *extra)
    fit_subprocess(
        tiny_args(root, shards, max_steps=4, extra=args),
        root.parent,
        pythonpath=(HERE,),
        script=HERE / "cpu_fsdp.py",
        env={"OMP_NUM_THREADS": "1"},
    )
    return root


def assert_trains_like(run: Path, reference: Path, *, steps=(0, 1, 2, 3), rel=1e-5) -> None:
    for tag in TAGS:
        ours, ref = scalars(run, tag), dict(scalars(reference, tag))
        assert [s for s, _ in ours] == list(steps), tag
        assert [v for _, v in ours] == pytest.approx([ref[s] for s in steps], rel=rel), tag


@pytest.fixture(scope="module")
def module_shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def one_process(module_shards, tmp_path_factory):
    root = tmp_path_factory.mktemp("one") / "run"
    fit_subprocess(tiny_args(root, module_shards, max_steps=4, extra=CLIP), root.parent)
    return root


@pytest.fixture(scope="module")
def sharded(module_shards, tmp_path_factory):
    return fsdp_fit(tmp_path_factory.mktemp("sharded") / "run", module_shards, extra=FP32)


def test_fsdp_v1_trains_like_one_process_and_resumes_its_shards_exactly(
    sharded, one_process, module_shards, tmp_path
):
    assert_trains_like(sharded, one_process)
    ckpt = sharded / "ckpt"
    step2 = ckpt / "step0000002.ckpt"
    assert sorted(p.name for p in step2.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert sorted(p.name for p in ckpt.iterdir() if p.name.startswith(".")) == [STAGING]
    assert not list((ckpt / STAGING).iterdir())  # published through staging, nothing left behind
    record = yaml.safe_load((sharded / "runs" / "olmo2" / "version_0" / "strategy.yaml").read_text())
    assert record["strategy"]["class"] == "olmo2_lit.train.strategies.FSDPStrategy"
    assert record["strategy"]["world_size"] == 2

    resumed = fsdp_fit(tmp_path / "resumed", module_shards, extra=(*FP32, "--ckpt_path", str(step2)))
    for tag in TAGS:
        assert scalars(resumed, tag) == scalars(sharded, tag)[2:]  # bitwise

    # consolidated into one file, resumed in one process with Adam's state
    one_file = tmp_path / "step2.ckpt"
    consolidate(checkpoint=str(step2), out=str(one_file))
    after = tmp_path / "after"
    fit_subprocess(
        tiny_args(after, module_shards, max_steps=4, extra=(*CLIP, "--ckpt_path", str(one_file))), tmp_path
    )
    assert_trains_like(after, sharded, steps=(2, 3))


def test_one_file_checkpoints_resume_under_fsdp_v1_with_adam_state_on_the_right_parameters(
    one_process, module_shards, tmp_path
):
    # one process's file (torch's param-group numbering) continued by 2 FSDP v1 ranks
    step2 = one_process / "ckpt" / "step0000002.ckpt"
    resumed = fsdp_fit(tmp_path / "from_one", module_shards, extra=(*FP32, "--ckpt_path", str(step2)))
    assert_trains_like(resumed, one_process, steps=(2, 3))

    # FSDP v1's own one-file checkpoints (state_dict_type: full; Lightning numbers them in module order)
    full = fsdp_fit(
        tmp_path / "full",
        module_shards,
        extra=(*FP32, "--trainer.strategy.init_args.state_dict_type", "full"),
    )
    assert_trains_like(full, one_process)
    full_step2 = full / "ckpt" / "step0000002.ckpt"
    assert full_step2.is_file()
    elsewhere = tmp_path / "full_in_one_process"
    fit_subprocess(
        tiny_args(elsewhere, module_shards, max_steps=4, extra=(*CLIP, "--ckpt_path", str(full_step2))),
        tmp_path,
    )
    assert_trains_like(elsewhere, full, steps=(2, 3))


def test_file_optimizer_state_is_matched_to_parameters_through_its_saved_groups():
    # Lightning's FSDP v1 `full` files number parameters in module order (group lists sorted), torch's
    # own in param-group order; with the embedding in the last group, as OLMo 2's, both reach it.
    model = torch.nn.Sequential(torch.nn.Embedding(4, 2), torch.nn.Linear(2, 2))
    optimizer = torch.optim.AdamW(
        [{"params": [model[1].weight, model[1].bias]}, {"params": [model[0].weight]}]
    )
    shapes = {"0.weight": (4, 2), "1.weight": (2, 2), "1.bias": (2,)}

    def saved(order, groups):
        return {"state": {i: {"exp_avg": torch.zeros(shapes[n])} for i, n in enumerate(order)},
                "param_groups": [{"params": g} for g in groups]}  # fmt: skip

    module_order = saved(["0.weight", "1.weight", "1.bias"], [[1, 2], [0]])
    torch_order = saved(["1.weight", "1.bias", "0.weight"], [[0, 1], [2]])
    for state in (module_order, torch_order):
        keyed = name_keyed(state, optimizer, model)
        assert {n: tuple(s["exp_avg"].shape) for n, s in keyed["state"].items()} == shapes
        assert [g["params"] for g in keyed["param_groups"]] == [["1.weight", "1.bias"], ["0.weight"]]


def test_optimizer_state_of_other_param_groups_is_refused():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW([{"params": [model.weight]}, {"params": [model.bias]}])
    saved = {"state": {}, "param_groups": [{"params": [0, 1]}]}
    with pytest.raises(CheckpointError, match=r"param groups of \[2\] parameters, this run's of \[1, 1\]"):
        name_keyed(saved, optimizer, model)


def test_fsdp_v1_computes_in_bf16_and_keeps_fp32_weights_and_grads(module_shards, tmp_path):
    # fsdp.yaml as it is (param_dtype bfloat16, reduce_dtype float32), on one rank: the same wrapping
    out = tmp_path / "dtypes.json"
    probe = ("--trainer.callbacks+=dtype_probe.RecordDtypes", f"--trainer.callbacks.out={out}")
    fsdp_fit(tmp_path / "run", module_shards, devices=1, extra=probe)
    bf16, fp32 = "torch.bfloat16", "torch.float32"
    seen = json.loads(out.read_text())
    assert seen == {"compute": bf16, "activation": bf16, "params": [fp32], "grads": [fp32]}
