import re
from pathlib import Path

import pytest
import torch

from olmo2_lit.model import PRESETS, ModelConfig, Transformer

# Exact (total, non-embedding) parameter counts, with the padded vocab 100,352 and untied
# embeddings: the sizes of the released checkpoints' HF config.json (hidden_size,
# intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads) counted by
# transformers' Olmo2ForCausalLM (see test_exact_counts_are_the_hf_configs_counts), whose
# published roundings are OLMO2.md §1.5's 1.485B / 1.074B, 7.30B / 6.48B, 13.72B / 12.69B,
# 32.23B / 31.21B.
EXACT = {
    "olmo2_1b": (1_484_916_736, 1_073_874_944),
    "olmo2_7b": (7_298_617_344, 6_476_533_760),
    "olmo2_13b": (13_716_198_400, 12_688_593_920),
    "olmo2_32b": (32_234_279_936, 31_206_675_456),
}
PUBLISHED = {  # OLMO2.md §1.5, in billions, as printed (the last digit is rounded)
    "olmo2_1b": ("1.485", "1.074"),
    "olmo2_7b": ("7.30", "6.48"),
    "olmo2_13b": ("13.72", "12.69"),
    "olmo2_32b": ("32.23", "31.21"),
}
# (d_model, intermediate_size, layers, heads, kv heads) of the HF config.json of each release.
HF_SIZES = {
    "olmo2_1b": (2048, 8192, 16, 16, 16),
    "olmo2_7b": (4096, 11008, 32, 32, 32),
    "olmo2_13b": (5120, 13824, 40, 40, 40),
    "olmo2_32b": (5120, 27648, 64, 40, 8),
}


@pytest.mark.parametrize("preset", sorted(EXACT))
def test_preset_param_counts_are_exact(preset):
    """Guards the preset sizes to the parameter (a missing QK-norm weight, a wrong GQA width or an
    unpadded vocab each change the count), and that they round to the published figures."""
    with torch.device("meta"):
        model = Transformer(ModelConfig.preset_config(preset))
    assert model.embeddings.weight.is_meta
    counts = (model.num_params(), model.num_params(include_embeddings=False))
    assert counts == EXACT[preset]
    for count, printed in zip(counts, PUBLISHED[preset]):
        decimals = len(printed.split(".")[1])
        assert f"{count / 1e9:.{decimals}f}" == printed


def test_exact_counts_are_the_hf_configs_counts():
    """Guards the table above against drift: transformers' own Olmo2 model, built from the
    released checkpoints' config sizes, has exactly these parameter counts."""
    transformers = pytest.importorskip("transformers")
    for preset, (d, hidden, layers, heads, kv_heads) in HF_SIZES.items():
        config = transformers.Olmo2Config(
            hidden_size=d,
            intermediate_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            vocab_size=100_352,
            tie_word_embeddings=False,
        )
        with torch.device("meta"):
            hf = transformers.Olmo2ForCausalLM(config)
        total = sum(p.numel() for p in hf.parameters())
        embeddings = hf.model.embed_tokens.weight.numel() + hf.lm_head.weight.numel()
        assert (total, total - embeddings) == EXACT[preset], preset


def test_docs_preset_table_matches_the_code():
    """Guards docs/model.md's preset table: each size and parameter count printed there is the
    code's (to the printed 3 decimals)."""
    text = (Path(__file__).parents[2] / "docs" / "model.md").read_text()
    for preset in EXACT:
        row = re.search(rf"^\| `{preset}` \|(.*)\|$", text, re.M)
        assert row, f"no row for {preset} in docs/model.md"
        cells = [c.strip() for c in row.group(1).split("|")]
        cfg = ModelConfig.preset_config(preset)
        sizes = [cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.kv_heads, cfg.mlp_hidden]
        assert [int(c.split()[0]) for c in cells[:5]] == sizes, preset
        total, non_emb = EXACT[preset]
        assert cells[5] == f"{total / 1e9:.3f}B / {non_emb / 1e9:.3f}B", preset


@pytest.mark.parametrize("preset", sorted(EXACT))
def test_presets_share_olmo2_constants(preset):
    """Guards the constants every OLMo 2 size shares (OLMO2.md §1.4-1.5, §6)."""
    cfg = ModelConfig.preset_config(preset)
    assert (cfg.vocab_size, cfg.padded_vocab_size) == (100_278, 100_352)
    assert cfg.rope_theta == 500_000 and cfg.norm_eps == 1e-6
    assert cfg.block == "reordered_norm" and cfg.qk_norm and cfg.clip_qkv is None
    assert cfg.head_dim == 128


def test_preset_dimensions():
    """Guards the published sizes of the 7B, 13B and 32B (GQA with 8 KV heads), OLMO2.md §1.5."""
    c = ModelConfig.olmo2_32b()
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.mlp_hidden) == (5120, 64, 40, 8, 27648)
    c = ModelConfig.olmo2_7b()
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.mlp_hidden) == (4096, 32, 32, 32, 11008)
    c = ModelConfig.olmo2_13b()
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.mlp_hidden) == (5120, 40, 40, 40, 13824)
    assert set(PRESETS) == {"olmo2_1b", "olmo2_7b", "olmo2_13b", "olmo2_32b", "tiny"}


def test_no_biases_and_untied_embeddings():
    """Guards against biases creeping in and tied input/output embeddings (OLMo 2 has neither)."""
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
    """Guards the bad-input rule: an invalid config fails naming the field."""
    with pytest.raises(ValueError, match=field):
        ModelConfig.tiny(**overrides)


def test_unknown_component_lists_valid_names():
    """Guards the error for a typo in a component name: it lists the valid names."""
    with pytest.raises(ValueError, match="pre_norm.*reordered_norm"):
        ModelConfig.tiny(block="prenorm")


def test_round_trip_dict():
    """Guards the checkpoint form of the config: to_dict/from_dict round-trip, unknown keys named."""
    cfg = ModelConfig.tiny(n_kv_heads=2, block="pre_norm")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
