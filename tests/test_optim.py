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
