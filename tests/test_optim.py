import pytest

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.optim import AdamW, ParamGroup, apply_lr_scales, build_param_groups, olmo2_param_groups


def test_olmo2_groups_exclude_only_the_embedding_from_decay():
    model = Transformer(ModelConfig.tiny())
    opt = AdamW(build_param_groups(model, olmo2_param_groups()))
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["eps"] == 1e-8
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["default"]["weight_decay"] == 0.1
    assert by_name["group0"]["weight_decay"] == 0.0
    assert [p is model.embeddings.weight for p in by_name["group0"]["params"]] == [True]
    # norms are decayed in OLMo 2
    assert any(p is model.norm.weight for p in by_name["default"]["params"])


def test_lr_scale_and_unmatched_pattern():
    model = Transformer(ModelConfig.tiny())
    groups = build_param_groups(model, [ParamGroup(patterns=["lm_head.*"], lr_scale=0.5)])
    opt = AdamW(groups, lr=1e-3)
    apply_lr_scales(opt)
    assert sorted(g["lr"] for g in opt.param_groups) == [5e-4, 1e-3]
    with pytest.raises(ValueError, match="match no parameter"):
        build_param_groups(model, [ParamGroup(patterns=["embedding.weight"])])


def test_the_first_matching_group_takes_a_parameter():
    """Overlapping patterns: ``blocks.0.*`` listed before ``blocks.*`` takes block 0's parameters (first
    match wins, as ParamGroup documents); the later group gets only the other blocks', and every
    trainable parameter lands in exactly one group."""

    model = Transformer(ModelConfig.tiny(n_layers=2))
    groups = build_param_groups(
        model,
        [
            ParamGroup(patterns=["blocks.0.*"], weight_decay=0.0),
            ParamGroup(patterns=["blocks.*"], lr_scale=0.5),
        ],
    )
    names = {id(p): n for n, p in model.named_parameters()}
    by_name = {g["name"]: sorted(names[id(p)] for p in g["params"]) for g in groups}
    assert by_name["group0"] and all(n.startswith("blocks.0.") for n in by_name["group0"])
    assert by_name["group1"] and all(n.startswith("blocks.1.") for n in by_name["group1"])
    assert not any(n.startswith("blocks.") for n in by_name["default"])
    assert sorted(n for g in by_name.values() for n in g) == sorted(names.values())
    assert groups[1]["weight_decay"] == 0.0 and groups[2]["lr_scale"] == 0.5
