import pytest
import torch

from olmo2_lit.model import PRESETS, ModelConfig, Transformer

# (total, non-embedding) parameters, OLMO2.md §1.5 (3-4 significant figures there).
REFERENCE = {
    "olmo2_1b": (1.485e9, 1.074e9),
    "olmo2_7b": (7.30e9, 6.48e9),
    "olmo2_13b": (13.72e9, 12.69e9),
    "olmo2_32b": (32.23e9, 31.21e9),
}


@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_preset_param_counts_match_reference(preset):
    with torch.device("meta"):
        model = Transformer(ModelConfig.preset_config(preset))
    total, non_emb = REFERENCE[preset]
    assert model.num_params() == pytest.approx(total, rel=2e-3)
    assert model.num_params(include_embeddings=False) == pytest.approx(non_emb, rel=2e-3)
    assert model.embeddings.weight.is_meta


@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_presets_share_olmo2_constants(preset):
    cfg = ModelConfig.preset_config(preset)
    assert (cfg.vocab_size, cfg.padded_vocab_size) == (100_278, 100_352)
    assert cfg.rope_theta == 500_000 and cfg.norm_eps == 1e-6
    assert cfg.block == "reordered_norm" and cfg.qk_norm and cfg.clip_qkv is None
    assert cfg.head_dim == 128


def test_preset_dimensions():
    c = ModelConfig.olmo2_32b()
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.mlp_hidden) == (5120, 64, 40, 8, 27648)
    c = ModelConfig.olmo2_7b()
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.mlp_hidden) == (4096, 32, 32, 32, 11008)
    c = ModelConfig.olmo2_13b()
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.mlp_hidden) == (5120, 40, 40, 40, 13824)
    assert set(PRESETS) == {"olmo2_1b", "olmo2_7b", "olmo2_13b", "olmo2_32b", "tiny"}


def test_no_biases_and_untied_embeddings():
    model = Transformer(ModelConfig.tiny())
    assert not any("bias" in n for n, _ in model.named_parameters())
    assert model.embeddings.weight.data_ptr() != model.lm_head.weight.data_ptr()


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(d_model=30, n_heads=4), "d_model"),
        (dict(n_heads=4, n_kv_heads=3), "n_heads"),
        (dict(block="no_such_block"), "block"),
        (dict(norm="batch_norm"), "norm"),
        (dict(mlp="moe"), "mlp"),
        (dict(attention="flash9"), "attention"),
        (dict(n_layers=0), "n_layers"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig.tiny(**overrides)


def test_unknown_component_lists_valid_names():
    with pytest.raises(ValueError, match="pre_norm.*reordered_norm"):
        ModelConfig.tiny(block="prenorm")


def test_round_trip_dict():
    cfg = ModelConfig.tiny(n_kv_heads=2, block="pre_norm")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
