"""``convert from-olmo-trainer`` maps what ai2-olmo wrote, refuses what would not continue the run (naming
the field or file and both values, in one or two lines) and never modifies the source directory.

Every case starts from the committed checkpoint written by ai2-olmo 0.6.0's own Trainer
(tests/fixtures/olmo_trainer/); a refusal case changes one thing in a copy of it.
"""

from __future__ import annotations

import shutil
import types

import pytest
import torch
import yaml
from test_olmo_trainer_convert import FIXTURE, SOURCE, T, tree_hash

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.errors import CheckpointError
from olmo2_lit.weights.olmo_trainer import from_olmo_trainer


@pytest.fixture
def source(tmp_path):
    """A copy of the fixture's checkpoint directory, to damage."""
    return shutil.copytree(SOURCE, tmp_path / "step6-unsharded")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "out.ckpt"
    before = tree_hash(SOURCE)
    from_olmo_trainer(checkpoint_dir=str(SOURCE), out=str(out))
    assert tree_hash(SOURCE) == before
    return torch.load(out, weights_only=False)


def _refused(directory, tmp_path, match, **kw) -> str:
    before = tree_hash(directory)
    with pytest.raises(CheckpointError, match=match) as info:
        from_olmo_trainer(checkpoint_dir=str(directory), out=str(tmp_path / "out.ckpt"), **kw)
    assert tree_hash(directory) == before and not (tmp_path / "out.ckpt").exists()
    assert len(str(info.value).splitlines()) <= 2, str(info.value)
    return str(info.value)


def test_weights_moments_step_and_position_map(converted):
    model = torch.load(SOURCE / "model.pt", weights_only=True)
    optim = torch.load(SOURCE / "optim.pt", weights_only=True)
    ours = converted["state_dict"]
    q, k, v = model["transformer.blocks.1.att_proj.weight"].split([32, 32, 32])
    up, gate = model["transformer.blocks.0.ff_proj.weight"].chunk(2)
    assert torch.equal(ours["model.blocks.1.attention.w_k.weight"], k)
    assert torch.equal(ours["model.blocks.0.feed_forward.w1.weight"], gate)
    assert torch.equal(ours["model.blocks.0.feed_forward.w3.weight"], up)
    assert torch.equal(ours["model.lm_head.weight"], model["transformer.ff_out.weight"])
    assert torch.equal(ours["model.norm.weight"], model["transformer.ln_f.weight"])

    groups = converted["optimizer_states"][0]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [g["initial_lr"] for g in groups] == [1e-3, 1e-3]
    assert groups[0]["lr"] == optim["param_groups"][0]["lr"]  # the LR step 6 ran at
    their_emb = optim["state"][optim["param_groups"][1]["params"][0]]
    our_emb = converted["optimizer_states"][0]["state"][groups[1]["params"][0]]
    torch.testing.assert_close(our_emb["exp_avg"], their_emb["exp_avg"] * (T / (T - 1)), rtol=0, atol=0)
    torch.testing.assert_close(our_emb["exp_avg_sq"], their_emb["exp_avg_sq"] * (T / (T - 1)) ** 2)
    assert float(our_emb["step"]) == 6

    data = converted["TokenShardDataModule"]
    assert converted["global_step"] == 6
    # 4 steps of 8 instances per epoch: step 6 is 2 global batches into epoch 1
    assert (data["epoch"], data["tokens"], data["total_tokens"]) == (1, 16 * T, 6 * 8 * T)
    assert (data["order"], data["seed"], data["global_batch_tokens"]) == ("olmo", 34521, 8 * T)


def test_an_fsdp_checkpoint_converts_as_the_ddp_one(converted, tmp_path):
    """The same 6 steps under ai2-olmo's FSDP (as OLMo 2 7B and 13B were trained): its optim.pt keys the
    state by parameter name, not index, and names carry FSDP's wrapper prefix. Same run, same conversion."""
    fsdp = FIXTURE / "fsdp-step6-unsharded"
    before = tree_hash(fsdp)
    from_olmo_trainer(checkpoint_dir=str(fsdp), out=str(tmp_path / "fsdp.ckpt"))
    assert tree_hash(fsdp) == before
    theirs = torch.load(tmp_path / "fsdp.ckpt", weights_only=False)
    assert theirs["state_dict"].keys() == converted["state_dict"].keys()
    for name, tensor in converted["state_dict"].items():
        torch.testing.assert_close(theirs["state_dict"][name], tensor, rtol=1e-6, atol=1e-7)
    ours_opt, fsdp_opt = converted["optimizer_states"][0], theirs["optimizer_states"][0]
    assert fsdp_opt["param_groups"] == ours_opt["param_groups"]
    for index, state in ours_opt["state"].items():
        assert fsdp_opt["state"][index].keys() == state.keys() == {"step", "exp_avg", "exp_avg_sq"}
        for key, value in state.items():
            torch.testing.assert_close(fsdp_opt["state"][index][key], value, rtol=1e-5, atol=1e-9)
    assert theirs["TokenShardDataModule"] == converted["TokenShardDataModule"]


@pytest.mark.parametrize("name", ["model.pt", "optim.pt", "train.pt", "config.yaml"])
def test_a_missing_file_is_named(source, tmp_path, name):
    (source / name).unlink()
    assert f"{source / name} is missing" in _refused(source, tmp_path, "missing")


@pytest.mark.parametrize("name", ["model.pt", "optim.pt", "train.pt"])
def test_a_truncated_file_is_named(source, tmp_path, name):
    path = source / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert str(path) in _refused(source, tmp_path, "truncated or corrupt")


def _edit_config(source, **model):
    cfg = yaml.safe_load((source / "config.yaml").read_text())
    cfg["model"].update(model)
    (source / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_a_model_that_is_not_olmo2s_is_refused(source, tmp_path):
    _edit_config(source, norm_after=False)  # OLMo 1's pre-norm block
    message = _refused(source, tmp_path, "architecture")
    assert "model.norm_after is False" in message and "True in olmo2_lit" in message


def test_architecture_refused_against_a_preset(tmp_path):
    message = _refused(SOURCE, tmp_path, "architecture", preset="olmo2_1b")
    assert "d_model is 32 in the checkpoint and 2048 in preset olmo2_1b" in message


def test_another_embedding_padding_is_refused(source, tmp_path):
    _edit_config(source, embedding_size=384)
    message = _refused(source, tmp_path, "architecture")
    assert "embedding_size is 384 in" in message and "and 128 here" in message


def test_optimizer_groups_refused_when_norms_are_not_decayed(source, tmp_path):
    """ai2-olmo's ``decay_norm_and_bias: false`` puts the norms in its no-decay group."""
    optim = torch.load(source / "optim.pt", weights_only=True)
    decay, no_decay = optim["param_groups"]
    norm = decay["param_names"].index("module.transformer.blocks.0.attn_norm.weight")
    no_decay["params"].append(decay["params"].pop(norm))
    no_decay["param_names"].append(decay["param_names"].pop(norm))
    torch.save(optim, source / "optim.pt")
    message = _refused(source, tmp_path, "optimizer param groups")
    assert "weight_decay is 0.0 for transformer.blocks.0.attn_norm.weight and 0.1 for" in message


def test_optimizer_groups_refused_when_embeddings_decay(source, tmp_path):
    """ai2-olmo's ``decay_embeddings: true``: the embedding in the decayed group."""
    optim = torch.load(source / "optim.pt", weights_only=True)
    optim["param_groups"][1]["weight_decay"] = 0.1
    torch.save(optim, source / "optim.pt")
    message = _refused(source, tmp_path, "optimizer param groups")
    assert "weight_decay of transformer.wte.weight is 0.1" in message and "0.0 in olmo2_lit" in message


@pytest.mark.parametrize(
    ("field", "kw"),
    [("sequence_length", {"sequence_length": 32}), ("global_batch_size", {"global_batch_size": 16})],
)
def test_sequence_length_and_global_batch_refused_on_resume(converted, tmp_path, field, kw):
    args = {"sequence_length": T, "global_batch_size": 8, **kw}
    dm = TokenShardDataModule(
        vocab_size=128, train_sources=[DataSource(paths=[str(FIXTURE / "data")])], dtype="uint16",
        micro_batch_size=2, order="olmo", **args,
    )  # fmt: skip
    dm.trainer = types.SimpleNamespace(
        global_rank=0, world_size=1, training=True, default_root_dir=str(tmp_path)
    )
    dm.load_state_dict(converted["TokenShardDataModule"])
    with pytest.raises(CheckpointError, match=f"data.{field}") as info:
        dm.setup("fit")
    saved, now = (T, 32) if field == "sequence_length" else (8, 16)
    assert f"has {saved}" in str(info.value) and f"this run {now}" in str(info.value)
