"""convert_hf without transformers: key/config tables, file formats, atomic writes, errors."""

import inspect
import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights import convert_hf as C
from olmo2_lit.weights import export as X
from olmo2_lit.weights import pretrained as P
from olmo2_lit.weights import state_dicts as S
from olmo2_lit.weights import verbs as V

GQA = dict(d_model=64, n_heads=4, n_kv_heads=2, n_layers=3, mlp_hidden=96, vocab_size=300)
IDS = dict(eos_token_id=1, pad_token_id=0)


@pytest.fixture(params=["tiny", "gqa"])
def cfg(request):
    return ModelConfig.tiny() if request.param == "tiny" else ModelConfig.tiny(**GQA)


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    model = Transformer(cfg)
    with torch.no_grad():  # norm weights start at 1; make them distinct so a swapped norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def _export(model, path, **overrides):
    args = dict(dtype="float32", **IDS)
    args.update(overrides)
    return X.export_hf(model, model.config, path, **args)


# --------------------------------------------------------------------------------- tables


def test_weight_keys_round_trip_and_are_distinct(cfg):
    native = list(S.native_shapes(cfg))
    hf = [C.rename_key(k, to_hf=True) for k in native]
    assert None not in hf and len(set(hf)) == len(native)
    assert [C.rename_key(k, to_hf=False) for k in hf] == native
    # LIGHTNING.md §7: 2 + 11 tensors per layer + final norm and head; no input_layernorm.
    assert len(hf) == 3 + 11 * cfg.n_layers
    assert not any("input_layernorm" in k for k in hf)


@pytest.mark.parametrize("preset", ["tiny", "olmo2_1b", "olmo2_7b", "olmo2_32b"])
def test_config_round_trip(preset):
    cfg = ModelConfig.preset_config(preset)
    ids = IDS if preset == "tiny" else {}
    assert C.hf_config_to_model_config(C.model_config_to_hf_config(cfg, **ids)) == cfg


def test_hf_config_of_7b_matches_the_release():
    # Values of allenai/OLMo-2-1124-7B/config.json (LIGHTNING.md §7).
    hf = C.model_config_to_hf_config(ModelConfig.olmo2_7b())
    expected = dict(
        vocab_size=100352,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rope_theta=500000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attention_bias=False,
        eos_token_id=100257,
        pad_token_id=100277,
        bos_token_id=None,
        model_type="olmo2",
        architectures=["Olmo2ForCausalLM"],
        dtype="bfloat16",
        torch_dtype="bfloat16",
    )
    assert {k: hf[k] for k in expected} == expected
    assert hf["rope_parameters"] == {"rope_type": "default", "rope_theta": 500000.0}


def _released_7b_config():
    """A v4-era config.json as the hub has it: rope_theta only, rope_scaling null, no olmo2_lit key."""
    hf = C.model_config_to_hf_config(ModelConfig.olmo2_7b())
    del hf["rope_parameters"], hf[C.VOCAB_HINT_KEY], hf["dtype"]
    hf.update(rope_scaling=None, torch_dtype="float32")
    return hf


def test_released_config_imports_with_padded_vocab():
    cfg = C.hf_config_to_model_config(_released_7b_config())
    assert cfg.vocab_size == cfg.padded_vocab_size == 100352
    assert cfg.replace(vocab_size=100278) == ModelConfig.olmo2_7b()


def test_v5_config_without_rope_theta_imports():
    hf = C.model_config_to_hf_config(ModelConfig.tiny(rope_theta=1234.0), **IDS)
    del hf["rope_theta"]
    assert C.hf_config_to_model_config(hf).rope_theta == 1234.0


@pytest.mark.parametrize(
    "key, value",
    [
        ("model_type", "llama"),
        ("architectures", ["LlamaForCausalLM"]),
        ("attention_bias", True),
        ("tie_word_embeddings", True),
        ("hidden_act", "gelu"),
        ("rope_scaling", {"rope_type": "linear", "factor": 2.0}),
        ("rope_parameters", {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 4.0}),
        ("rope_theta", 10000.0),  # disagrees with rope_parameters
        ("head_dim", 4),
    ],
)
def test_unrepresentable_hf_config_is_refused_naming_the_field(key, value):
    hf = C.model_config_to_hf_config(ModelConfig.tiny(), **IDS)
    hf[key] = value
    with pytest.raises(ValueError, match=re.escape(key)) as err:
        C.hf_config_to_model_config(hf)
    shown = value["rope_type"] if isinstance(value, dict) and key == "rope_parameters" else value
    assert repr(shown) in str(err.value) or str(shown) in str(err.value)


def test_hf_config_missing_required_key_is_named():
    hf = C.model_config_to_hf_config(ModelConfig.tiny(), **IDS)
    del hf["intermediate_size"]
    with pytest.raises(ValueError, match="intermediate_size"):
        C.hf_config_to_model_config(hf)


@pytest.mark.parametrize(
    "change",
    [
        dict(block="pre_norm"),
        dict(qk_norm=False),
        dict(clip_qkv=8.0),
        dict(mlp="gelu"),
        dict(norm="layer_norm"),
    ],
)
def test_model_config_without_hf_equivalent_is_refused(change):
    ((field, value),) = change.items()
    with pytest.raises(ValueError, match=f"ModelConfig.{field}={value!r}"):
        C.model_config_to_hf_config(ModelConfig.tiny(**change), **IDS)


def test_token_id_outside_vocab_is_refused():
    with pytest.raises(ValueError, match="eos_token_id=100257.*vocab_size=256"):
        C.model_config_to_hf_config(ModelConfig.tiny())


# ---------------------------------------------------------------------------- state dicts


def _hf_sd(cfg):
    return S.native_to_hf(_model(cfg).state_dict(), cfg)


def test_missing_tensor_is_named():
    cfg = ModelConfig.tiny(**GQA)
    sd = _hf_sd(cfg)
    del sd["model.layers.2.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match=r"missing tensor\(s\): model\.layers\.2\.mlp\.up_proj\.weight"):
        S.hf_to_native(sd, cfg)


def test_unexpected_tensor_is_named():
    cfg = ModelConfig.tiny(**GQA)
    sd = _hf_sd(cfg)
    sd["model.layers.0.input_layernorm.weight"] = torch.ones(cfg.d_model)
    with pytest.raises(
        ValueError, match=r"unexpected tensor\(s\): model\.layers\.0\.input_layernorm\.weight"
    ):
        S.hf_to_native(sd, cfg)


def test_wrong_shape_is_named_with_both_shapes():
    cfg = ModelConfig.tiny(**GQA)
    sd = _hf_sd(cfg)
    sd["model.layers.1.self_attn.k_norm.weight"] = torch.ones(64)  # q-norm width; k is 2 heads * 16
    with pytest.raises(
        ValueError, match=re.escape("model.layers.1.self_attn.k_norm.weight expected (32,), got (64,)")
    ):
        S.hf_to_native(sd, cfg)


def test_native_to_hf_names_our_key():
    cfg = ModelConfig.tiny()
    sd = _model(cfg).state_dict()
    del sd["blocks.1.attention.w_v.weight"]
    with pytest.raises(ValueError, match=r"blocks\.1\.attention\.w_v\.weight"):
        S.native_to_hf(sd, cfg)


# --------------------------------------------------------------------------------- files


def test_export_import_is_bit_exact(cfg, tmp_path):
    model = _model(cfg)
    assert _export(model, tmp_path / "hf") == 1
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    back = P.import_hf(tmp_path / "hf")
    assert back.config == cfg
    _assert_same_tensors(model.state_dict(), back.state_dict())
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    assert torch.equal(model(ids), back(ids))
    assert json.loads((tmp_path / "hf" / "generation_config.json").read_text()) == IDS


def test_sharded_export_imports(tmp_path):
    cfg = ModelConfig.tiny(**GQA)
    model = _model(cfg)
    n_shards = _export(model, tmp_path / "hf", max_shard_size=40_000)
    index = json.loads((tmp_path / "hf" / P.HF_INDEX).read_text())
    assert n_shards > 1 and len(set(index["weight_map"].values())) == n_shards
    assert index["metadata"]["total_size"] == 4 * model.num_params()
    assert not (tmp_path / "hf" / P.HF_WEIGHTS).exists()
    _assert_same_tensors(model.state_dict(), P.import_hf(tmp_path / "hf").state_dict())


def test_bf16_export_and_dtype_on_import(tmp_path):
    model = _model(ModelConfig.tiny())
    _export(model, tmp_path / "hf", dtype="bfloat16")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    kept = P.import_hf(tmp_path / "hf")
    assert {p.dtype for p in kept.parameters()} == {torch.bfloat16}
    assert torch.equal(kept.lm_head.weight, model.lm_head.weight.to(torch.bfloat16))
    widened = P.import_hf(tmp_path / "hf", dtype="float32")
    assert {p.dtype for p in widened.parameters()} == {torch.float32}


def test_tokenizer_json_is_copied(tmp_path):
    tok = tmp_path / "tokenizer.json"
    tok.write_text('{"version": "1.0"}')
    _export(_model(ModelConfig.tiny()), tmp_path / "hf", tokenizer_json=str(tok))
    assert (tmp_path / "hf" / "tokenizer.json").read_text() == tok.read_text()


def test_loaded_model_has_no_meta_tensors(tmp_path):
    _export(_model(ModelConfig.tiny()), tmp_path / "hf")
    model = P.import_hf(tmp_path / "hf").to(torch.float64)  # moving needs real buffers
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert model(torch.tensor([[1, 2, 3]])).dtype == torch.float64


def test_export_refuses_non_empty_out_dir(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path / "hf"))):
        _export(_model(ModelConfig.tiny()), tmp_path / "hf")
    assert [p.name for p in (tmp_path / "hf").iterdir()] == ["keep.txt"]


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_save_file(tensors, path, metadata):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save_file(tensors, path, metadata=metadata)

    real_save_file = save_file
    monkeypatch.setattr(X, "save_file", failing_save_file)
    with pytest.raises(OSError, match="disk full"):
        _export(_model(ModelConfig.tiny()), tmp_path / "hf", max_shard_size=20_000)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_missing_dir_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        P.import_hf(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        P.load_hf_state_dict(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "empty" / "config.json"))):
        P.import_hf(tmp_path / "empty")
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{tmp_path / 'empty'} has neither model.safetensors")
    ):
        P.load_hf_state_dict(tmp_path / "empty")


def test_llama_config_json_is_refused(tmp_path):
    _export(_model(ModelConfig.tiny()), tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'hf'}: config.json model_type='llama'")):
        P.import_hf(tmp_path / "hf")


def test_tampered_hf_weights_name_dir_and_key(tmp_path):
    cfg = ModelConfig.tiny()
    _export(_model(cfg), tmp_path / "hf")
    sd = load_file(tmp_path / "hf" / P.HF_WEIGHTS)
    sd["model.norm.weight"] = torch.ones(cfg.d_model + 1)
    save_file(sd, tmp_path / "hf" / P.HF_WEIGHTS)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'hf'}: wrong shape(s): model.norm.weight")):
        P.import_hf(tmp_path / "hf")


def test_index_listing_a_tensor_no_shard_has(tmp_path):
    _export(_model(ModelConfig.tiny()), tmp_path / "hf", max_shard_size=20_000)
    index = json.loads((tmp_path / "hf" / P.HF_INDEX).read_text())
    index["weight_map"]["model.extra.weight"] = index["weight_map"]["model.norm.weight"]
    (tmp_path / "hf" / P.HF_INDEX).write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"model\.extra\.weight"):
        P.load_hf_state_dict(tmp_path / "hf")


# -------------------------------------------------------------------------- native format


def test_native_round_trip(cfg, tmp_path):
    model = _model(cfg)
    X.save_native(model, tmp_path / "native")
    assert json.loads((tmp_path / "native" / P.NATIVE_CONFIG).read_text()) == cfg.to_dict()
    back = P.load_native(tmp_path / "native")
    assert back.config == cfg
    _assert_same_tensors(model.state_dict(), back.state_dict())


def test_native_config_mismatch_names_the_tensor(tmp_path):
    X.save_native(_model(ModelConfig.tiny()), tmp_path / "native")
    wrong = ModelConfig.tiny(mlp_hidden=32).to_dict()
    (tmp_path / "native" / P.NATIVE_CONFIG).write_text(json.dumps(wrong))
    with pytest.raises(
        ValueError, match=re.escape("blocks.0.feed_forward.w1.weight expected (32, 32), got (64, 32)")
    ):
        P.load_native(tmp_path / "native")


def test_native_missing_key_and_unknown_config_field(tmp_path):
    X.save_native(_model(ModelConfig.tiny()), tmp_path / "native")
    sd = load_file(tmp_path / "native" / P.HF_WEIGHTS)
    del sd["lm_head.weight"]
    save_file(sd, tmp_path / "native" / P.HF_WEIGHTS)
    with pytest.raises(ValueError, match=r"missing tensor\(s\): lm_head\.weight"):
        P.load_native(tmp_path / "native")
    typo = {**ModelConfig.tiny().to_dict(), "d_modle": 3}
    (tmp_path / "native" / P.NATIVE_CONFIG).write_text(json.dumps(typo))
    with pytest.raises(ValueError, match="d_modle"):
        P.load_native(tmp_path / "native")


# ------------------------------------------------------------------------ Lightning .ckpt


def _lightning_ckpt(model, path, prefix="model."):
    """The shape of a checkpoint saved by the training module (the contract in convert_hf)."""
    torch.save(
        {
            "epoch": 0,
            "global_step": 7,
            "optimizer_states": [{"state": {}}],
            "state_dict": {
                **{prefix + k: v for k, v in model.state_dict().items()},
                "val_ce.mean_value": torch.tensor(0.0),
            },
            "olmo2_lit": {"model_config": model.config.to_dict(), "rng": {}},
        },
        path,
    )
    return path


@pytest.mark.parametrize("prefix", ["model.", "model._orig_mod."])
def test_state_dict_from_lightning_checkpoint(tmp_path, prefix):
    model = _model(ModelConfig.tiny(**GQA))
    cfg, sd = P.state_dict_from_lightning_checkpoint(_lightning_ckpt(model, tmp_path / "last.ckpt", prefix))
    assert cfg == model.config
    _assert_same_tensors(model.state_dict(), sd)


def test_lightning_checkpoint_without_model_config(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other\.ckpt has no checkpoint\['olmo2_lit'\]\['model_config'\]"):
        P.state_dict_from_lightning_checkpoint(tmp_path / "other.ckpt")
    (tmp_path / "sharded.ckpt").mkdir()
    with pytest.raises(ValueError, match="consolidate"):
        P.state_dict_from_lightning_checkpoint(tmp_path / "sharded.ckpt")


def test_to_hf_from_ckpt_and_from_hf_cli_verbs(tmp_path, capsys):
    model = _model(ModelConfig.tiny(**GQA))
    ckpt = _lightning_ckpt(model, tmp_path / "last.ckpt")
    V.to_hf(checkpoint=str(ckpt), out_dir=str(tmp_path / "hf"), dtype="float32", **IDS)
    line = capsys.readouterr().out
    assert f"{model.num_params():,} params" in line and str(tmp_path / "hf") in line
    V.from_hf(hf_dir=str(tmp_path / "hf"), out_dir=str(tmp_path / "native"))
    assert f"-> {tmp_path / 'native'}" in capsys.readouterr().out
    _assert_same_tensors(model.state_dict(), P.load_native(tmp_path / "native").state_dict())
    V.to_hf(checkpoint=str(tmp_path / "native"), out_dir=str(tmp_path / "hf2"), **IDS)  # native dir, bf16
    assert P.import_hf(tmp_path / "hf2").lm_head.weight.dtype == torch.bfloat16


def test_cli_verbs_refuse_existing_out_dir_before_reading(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(FileExistsError):
        V.to_hf(checkpoint=str(tmp_path / "does-not-exist.ckpt"), out_dir=str(tmp_path / "out"))


@pytest.mark.parametrize("verb", [V.from_hf, V.to_hf])
def test_cli_verbs_document_every_argument(verb):
    doc = inspect.getdoc(verb)
    for name in inspect.signature(verb).parameters:
        assert re.search(rf"^\s+{name}: \S", doc, re.M), f"{verb.__name__}: {name} undocumented"


# ----------------------------------------------------------------------- load_pretrained


@pytest.mark.parametrize("kind", ["hf", "native", "ckpt"])
def test_load_pretrained_reads_every_format(tmp_path, kind):
    model = _model(ModelConfig.tiny())
    path = {
        "hf": lambda: _export(model, tmp_path / "w") and tmp_path / "w",
        "native": lambda: X.save_native(model, tmp_path / "w") or tmp_path / "w",
        "ckpt": lambda: _lightning_ckpt(model, tmp_path / "w.ckpt"),
    }[kind]()
    _assert_same_tensors(model.state_dict(), P.load_pretrained(path).state_dict())


def test_load_pretrained_with_a_training_config(tmp_path):
    model = _model(ModelConfig.tiny(vocab_size=256))
    _export(model, tmp_path / "hf")
    # The tokenizer is smaller than the rows (as 100278 vs 100352); other backend, longer context.
    config = ModelConfig.tiny(vocab_size=200, attention="eager", max_sequence_length=512)
    loaded = P.load_pretrained(tmp_path / "hf", config=config)
    assert loaded.config == config
    _assert_same_tensors(model.state_dict(), loaded.state_dict())


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(n_layers=3), "n_layers"),
        (dict(block="pre_norm"), "block"),
        (dict(rope_theta=10_000.0), "rope_theta"),
        (dict(vocab_size=300), "embeddings.weight"),
    ],
)
def test_load_pretrained_refuses_another_architecture(tmp_path, change, named):
    X.save_native(_model(ModelConfig.tiny()), tmp_path / "native")
    with pytest.raises(ValueError, match=re.escape(named)):
        P.load_pretrained(tmp_path / "native", config=ModelConfig.tiny(**change))


def test_load_pretrained_unknown_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        P.load_pretrained(tmp_path)
