"""``convert from-olmo-core`` refuses what would not continue the run, naming the field or file and both
values, and never modifies the source directory.

The step directory's ``model_and_optim/`` is written by OLMo-core's own ``save_model_and_optim_state``
(flattened optimizer state, as its Trainer saves it) after one AdamW step; ``train/rank0.pt`` holds the
trainer state OLMo-core's ``Trainer.state_dict`` writes (its keys; the run-level test,
test_olmo_core_convert.py, converts directories written by the Trainer itself).
"""

from __future__ import annotations

import shutil
import types

import pytest
import torch
from test_olmo_core_convert import tree_hash

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.errors import CheckpointError
from olmo2_lit.weights.olmo_core import (
    OURS,
    from_olmo_core,
    lightning_checkpoint,
    model_config_from_shapes,
    olmo_core_fingerprint,
)
from olmo2_lit.weights.olmo_core_dcp import read_step_dir

pytest.importorskip("olmo_core")


def _step_dir(root, *, decay_embeddings: bool):
    from olmo_core.distributed.checkpoint import save_model_and_optim_state
    from olmo_core.optim import AdamWConfig, OptimGroupOverride
    from olmo_core_run import Spec, _model  # noqa: PLC0415 - tests/ is on the path via test_olmo_core_convert

    torch.manual_seed(0)
    model = _model(Spec(shards=[], out=str(root)))
    overrides = (
        None if decay_embeddings else [OptimGroupOverride(["embeddings.weight"], {"weight_decay": 0.0})]
    )
    optim = AdamWConfig(lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), group_overrides=overrides).build(model)
    model(torch.randint(0, 256, (2, 16))).sum().backward()
    optim.step()
    step = root / "step1"
    save_model_and_optim_state(step / "model_and_optim", model, optim, flatten_optimizer_state=True)
    (step / "train").mkdir()
    loader = dict(
        dataset_fingerprint_version="v2.0", dataset_fingerprint="f" * 64, batches_processed=1,
        tokens_processed=512, seed=0, epoch=1, dataset_type="fsl", sequence_length=64,
        max_target_sequence_length=None,
    )  # fmt: skip
    trainer = dict(
        global_step=1, global_train_tokens_seen=512, global_train_petaflops=0.0, max_steps=10,
        data_loader=loader, epoch=1, world_size=1, rng={}, callbacks={},
    )  # fmt: skip
    torch.save(trainer, step / "train" / "rank0.pt")
    return step


@pytest.fixture(scope="module")
def step_dir(tmp_path_factory):
    return _step_dir(tmp_path_factory.mktemp("oc"), decay_embeddings=False)


def _refused(step, tmp_path, match, **kw):
    before = tree_hash(step)
    with pytest.raises(CheckpointError, match=match) as info:
        from_olmo_core(step_dir=str(step), out=str(tmp_path / "out.ckpt"), **kw)
    assert tree_hash(step) == before and not (tmp_path / "out.ckpt").exists()
    assert len(str(info.value).splitlines()) <= 2, str(info.value)
    return str(info.value)


def test_converts_and_leaves_the_source_alone(step_dir, tmp_path):
    before = tree_hash(step_dir)
    from_olmo_core(step_dir=str(step_dir), out=str(tmp_path / "out.ckpt"), n_heads=4)
    assert tree_hash(step_dir) == before
    ckpt = torch.load(tmp_path / "out.ckpt", weights_only=False)
    state, _ = read_step_dir(step_dir)
    assert torch.equal(ckpt["state_dict"]["model.norm.weight"], state["model.lm_head.norm.weight"])
    groups = ckpt["optimizer_states"][0]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    emb = groups[1]["params"][0]
    assert torch.equal(
        ckpt["optimizer_states"][0]["state"][emb]["exp_avg"], state["optim.state.embeddings.weight.exp_avg"]
    )
    assert ckpt["global_step"] == 1 and ckpt["TokenShardDataModule"]["epoch"] == 0


def test_architecture_refused_naming_field_and_values(step_dir, tmp_path):
    message = _refused(step_dir, tmp_path, "architecture", preset="olmo2_1b")
    assert "d_model is 32 in the checkpoint and 2048 in preset olmo2_1b" in message


def test_optimizer_groups_refused(tmp_path):
    step = _step_dir(tmp_path / "decayed", decay_embeddings=True)
    message = _refused(step, tmp_path, "optimizer param groups", n_heads=4)
    assert "weight_decay" in message and "0.1" in message and "0.0" in message


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_dcp_file_is_named(step_dir, tmp_path, damage):
    step = tmp_path / "step1"
    shutil.copytree(step_dir, step)
    victim = max((step / "model_and_optim").glob("*.distcp"), key=lambda p: p.stat().st_size)
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    message = _refused(step, tmp_path, damage, n_heads=4)
    assert str(victim) in message


@pytest.mark.parametrize(
    ("field", "kw"),
    [("sequence_length", {"sequence_length": 32}), ("global_batch_size", {"global_batch_size": 16})],
)
def test_sequence_length_and_global_batch_refused_on_resume(step_dir, tmp_path, field, kw):
    state, trainer = read_step_dir(step_dir)
    weights = {OURS.get(k[6:], k[6:]): v for k, v in state.items() if k.startswith("model.")}
    ckpt = lightning_checkpoint(
        state, trainer, model_config_from_shapes(weights, preset=None, n_heads=4, vocab_size=None)
    )
    shards = tmp_path / "shards"
    shards.mkdir()
    torch.randint(0, 256, (4096,), dtype=torch.int32).numpy().astype("uint16").tofile(shards / "part-0.npy")
    args = {"sequence_length": 64, "global_batch_size": 8, **kw}
    dm = TokenShardDataModule(
        vocab_size=256, train_sources=[DataSource(paths=[str(shards)])], dtype="uint16", micro_batch_size=8,
        order="olmo_core", **args,
    )  # fmt: skip
    dm.trainer = types.SimpleNamespace(
        global_rank=0, world_size=1, training=True, default_root_dir=str(tmp_path)
    )
    dm.load_state_dict(ckpt["TokenShardDataModule"])
    with pytest.raises(CheckpointError, match=f"data.{field}") as info:
        dm.setup("fit")
    saved, now = (64, 32) if field == "sequence_length" else (8, 16)
    assert f"has {saved}" in str(info.value) and f"this run {now}" in str(info.value)


@pytest.mark.parametrize("max_target", [None, 128])
def test_exported_fingerprint_is_olmo_cores(tmp_path, max_target):
    """Guards against an exported position that OLMo-core's loader refuses as another dataset."""
    import numpy as np
    from olmo_core.data import NumpyFSLDataset

    paths = []
    for i, n in enumerate([6000, 7001]):
        paths.append(tmp_path / f"part-{i}.npy")
        np.arange(n, dtype=np.uint32).tofile(paths[-1])
    theirs = NumpyFSLDataset(
        *paths, sequence_length=64, pad_token_id=100277, eos_token_id=100257, vocab_size=100278,
        dtype=np.uint32, max_target_sequence_length=max_target,
    ).fingerprint  # fmt: skip
    shards = [[0, p.name, p.stat().st_size // 4, None] for p in paths]
    ours = olmo_core_fingerprint(
        shards, vocab_size=100278, pad_token_id=100277, eos_token_id=100257, dtype="uint32",
        max_target_sequence_length=max_target,
    )  # fmt: skip
    assert ours == theirs
