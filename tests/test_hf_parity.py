"""Our Transformer against transformers' Olmo2ForCausalLM, through our real converter (CPU, fp32)."""

import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from olmo2_lit.model import ModelConfig, Transformer  # noqa: E402
from olmo2_lit.weights import convert_hf as C  # noqa: E402
from olmo2_lit.weights import export as X  # noqa: E402
from olmo2_lit.weights import pretrained as P  # noqa: E402
from olmo2_lit.weights import state_dicts as S  # noqa: E402

IDS = dict(eos_token_id=1, pad_token_id=0)
LENGTHS = (1, 7, 33)
CONFIGS = {
    "tiny": ModelConfig.tiny(),  # MHA, vocab 256 = padded
    "gqa": ModelConfig.tiny(d_model=64, n_heads=4, n_kv_heads=2, n_layers=3, mlp_hidden=96, vocab_size=300),
}


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


def _randomize_(model: torch.nn.Module, seed: int) -> None:
    """Seeded weights large enough for O(1) logits, norm weights away from 1, so any mix-up shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.2 * noise if "norm" in name else 0.1 * noise)


def _hf_model(cfg: ModelConfig, attn: str = "sdpa"):
    hf_config = transformers.Olmo2Config(**C.model_config_to_hf_config(cfg, **IDS, dtype="float32"))
    hf_config._attn_implementation = attn
    model = transformers.Olmo2ForCausalLM(hf_config).eval()
    _randomize_(model, seed=0)
    return model


def _inputs(cfg: ModelConfig, length: int) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (2, length), generator=torch.Generator().manual_seed(length))


def _assert_logits_match(ours: Transformer, hf, cfg: ModelConfig) -> None:
    for length in LENGTHS:
        ids = _inputs(cfg, length)
        with torch.no_grad():
            expected = hf(input_ids=ids).logits
            got = ours(ids)
        assert got.shape == (2, length, cfg.padded_vocab_size)
        assert expected.abs().max() > 0.5  # the comparison is not between near-zero tensors
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_import_matches_transformers(cfg, attn, tmp_path):
    hf = _hf_model(cfg, attn)
    hf.save_pretrained(tmp_path / "hf")
    ours = P.import_hf(tmp_path / "hf").eval()
    assert ours.config == cfg
    _assert_logits_match(ours, hf, cfg)


def test_loss_matches_transformers(cfg, tmp_path):
    hf = _hf_model(cfg)
    hf.save_pretrained(tmp_path / "hf")
    ours = P.import_hf(tmp_path / "hf").eval()
    ids = _inputs(cfg, 33)
    with torch.no_grad():
        out = hf(input_ids=ids, labels=ids)
        logits = ours(ids)
    ours_ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    hf_ce = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(ours_ce, hf_ce, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_ce, out.loss, atol=1e-5, rtol=0)


def test_export_matches_transformers(cfg, tmp_path):
    ours = Transformer(cfg).eval()
    _randomize_(ours, seed=1)
    X.export_hf(ours, cfg, tmp_path / "hf", dtype="float32", **IDS)
    hf = transformers.Olmo2ForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.vocab_size == cfg.padded_vocab_size
    assert hf.config.rope_parameters["rope_theta"] == cfg.rope_theta
    assert (hf.generation_config.eos_token_id, hf.generation_config.pad_token_id) == (1, 0)
    assert hf.dtype == torch.float32
    _assert_logits_match(ours, hf, cfg)


def test_transformers_sharded_checkpoint_imports(tmp_path):
    cfg = CONFIGS["gqa"]
    hf = _hf_model(cfg)
    hf.save_pretrained(tmp_path / "hf", max_shard_size="50KB")
    assert (tmp_path / "hf" / P.HF_INDEX).is_file()
    ours = P.import_hf(tmp_path / "hf")
    hf_sd = hf.state_dict()
    for key, tensor in S.native_to_hf(ours.state_dict(), cfg).items():
        assert torch.equal(tensor, hf_sd[key]), key


def test_a_swapped_weight_is_caught(tmp_path):
    """Negative control: the tolerance is tight enough that one mis-mapped tensor fails parity."""
    cfg = CONFIGS["gqa"]
    hf = _hf_model(cfg)
    hf.save_pretrained(tmp_path / "hf")
    ours = P.import_hf(tmp_path / "hf").eval()
    ffn = ours.blocks[1].feed_forward
    ffn.w1.weight, ffn.w3.weight = ffn.w3.weight, ffn.w1.weight
    with pytest.raises(AssertionError):
        _assert_logits_match(ours, hf, cfg)
