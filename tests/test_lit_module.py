import torch

from olmo2_lit.model import ModelConfig
from olmo2_lit.train.lit_module import OLMo2LitModule
from olmo2_lit.train.loss import lm_loss
from olmo2_lit.train.parallelize import ParallelizeConfig, parameter_name


def _loss_and_grads(module, ids):
    module.configure_model()
    torch.manual_seed(0)
    module.model.load_state_dict(_reference_weights(module.config))
    ce, z = lm_loss(module(ids[:, :-1]), ids[:, 1:])
    (ce + z).backward()
    return ce.detach(), {parameter_name(n): p.grad.clone() for n, p in module.model.named_parameters()}


def _reference_weights(cfg):
    torch.manual_seed(0)
    from olmo2_lit.model import Transformer

    return Transformer(cfg).state_dict()


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    cfg = ModelConfig.tiny()
    ids = torch.randint(0, 256, (2, 17), generator=torch.Generator().manual_seed(3))
    plain_loss, plain = _loss_and_grads(OLMo2LitModule(config=cfg), ids)
    ckpt_loss, ckpt = _loss_and_grads(
        OLMo2LitModule(config=cfg, parallelize=ParallelizeConfig(activation_checkpointing=True)), ids
    )
    assert torch.equal(plain_loss, ckpt_loss)
    assert set(ckpt) == set(plain)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=1e-6, rtol=1e-5)


def test_configure_model_is_idempotent_and_state_dict_keys_are_plain():
    module = OLMo2LitModule(
        config=ModelConfig.tiny(), parallelize=ParallelizeConfig(activation_checkpointing=True)
    )
    module.configure_model()
    first = module.model
    module.configure_model()
    assert module.model is first
    assert all(
        k.startswith("model.") and "checkpoint" not in k
        for k in module.state_dict()
        if k.startswith("model.")
    )


def test_compile_per_block_matches_eager():
    """``compile: true`` compiles each block in place (inductor on CPU here, ~25 s); same numbers."""
    cfg = ModelConfig.tiny()
    ids = torch.randint(0, 256, (2, 17), generator=torch.Generator().manual_seed(4))
    eager_loss, eager = _loss_and_grads(OLMo2LitModule(config=cfg), ids)
    module = OLMo2LitModule(config=cfg, parallelize=ParallelizeConfig(compile=True))
    compiled_loss, compiled = _loss_and_grads(module, ids)
    assert all(block._compiled_call_impl is not None for block in module.model.blocks)
    torch.testing.assert_close(compiled_loss, eager_loss, atol=1e-5, rtol=0)
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], atol=1e-5, rtol=1e-4)
