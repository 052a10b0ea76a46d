"""Non-default values of the tool verbs' options (``generate``, ``soup``, ``convert``, ``prepare``) change
what they print or write (tests/options_coverage.py). References: greedy generation on the in-memory model,
averages and casts computed by hand, the written files read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from olmo2_lit.cli import main
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.model.generate import generate
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.weights.export import save_native
from olmo2_lit.weights.pretrained import read_native

TEXT = [f"def function_{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200)]


# --- generate ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """A tiny model with O(1) logits (so sampling is not greedy by accident) saved with its tokenizer."""
    root = tmp_path_factory.mktemp("generate")
    tok = train_bpe(TEXT, vocab_size=300)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(vocab_size=tok.get_vocab_size(), max_sequence_length=64)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)  # sharper, but not one-hot, next-token distributions
    save_native(model, root / "m")
    (root / "m" / "tokenizer.json").write_text(tok.to_str())
    return root / "m", tok, model


def _generate(path, capsys, *flags) -> str:
    main(["generate", "--checkpoint", str(path), "--prompt+", "def f", "--max_new_tokens", "10", *flags])
    return capsys.readouterr().out.split("\n", 1)[1]


def _greedy(model, tok, *, eos: str = "<|endoftext|>") -> str:
    ids = generate(model, [tok.encode("def f").ids], max_new_tokens=10, eos_id=tok.token_to_id(eos))[0]
    return "def f" + tok.decode(ids) + "\n"


def test_sampling_options_change_the_continuation(native, capsys):
    """``temperature: 1`` samples (not the greedy text, for some seed of three), ``seed`` picks the sample
    (the same seed twice: the same text), and ``top_k: 1`` or a tiny ``top_p`` leave only the most likely
    token, so they give the greedy text back even at temperature 1."""
    path, tok, model = native
    greedy = _greedy(model, tok)
    assert _generate(path, capsys) == greedy
    samples = [_generate(path, capsys, "--temperature", "1.0", "--seed", str(s)) for s in (0, 1, 2)]
    assert any(s != greedy for s in samples) and len(set(samples)) > 1
    assert _generate(path, capsys, "--temperature", "1.0", "--seed", "1") == samples[1]
    assert _generate(path, capsys, "--temperature", "1.0", "--top_k", "1", "--seed", "2") == greedy
    assert _generate(path, capsys, "--temperature", "1.0", "--top_p", "1e-6", "--seed", "2") == greedy


def test_eos_token_ends_the_continuation_at_that_token(native, capsys):
    """``--eos_token`` set to the greedy continuation's third token ends the text right before it."""
    path, tok, model = native
    ids = generate(model, [tok.encode("def f").ids], max_new_tokens=10)[0]
    third = tok.id_to_token(ids[2])
    first = ids.index(ids[2])
    assert _generate(path, capsys, "--eos_token", third) == "def f" + tok.decode(ids[:first]) + "\n"


def test_dtype_runs_the_model_in_that_dtype(native, capsys):
    """``--dtype bfloat16`` casts the weights: the text is greedy generation of the bf16 model (bf16 inputs
    throughout), which here differs from the float32 model's."""
    path, tok, model = native
    bf16 = Transformer(model.config).eval()
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    assert _generate(path, capsys, "--dtype", "bfloat16") == _greedy(bf16, tok)


# --- soup ----------------------------------------------------------------------------------------


def test_soup_of_bf16_inputs_rounds_once_to_the_dtype_asked(tmp_path):
    """Two bfloat16 native dirs: by default the soup is written in bf16, the float64 mean rounded once
    (not a bf16 sum, which would round twice); ``--dtype float32`` writes the exact mean (two bf16 values'
    mean is exact in float32); ``--dtype float16`` the mean rounded to float16."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(Transformer(ModelConfig.tiny()).to(torch.bfloat16))
        save_native(models[-1], tmp_path / f"m{seed}")
    a, b = (m.state_dict() for m in models)
    for dtype, expected_dtype in (
        (None, torch.bfloat16),
        ("float32", torch.float32),
        ("float16", torch.float16),
    ):
        out = tmp_path / f"soup_{dtype}"
        main(
            [
                "soup",
                str(tmp_path / "m0"),
                str(tmp_path / "m1"),
                "--out",
                str(out),
                *(["--dtype", dtype] if dtype else []),
            ]
        )
        _, soup = read_native(out)
        for key in a:
            mean = (a[key].double() + b[key].double()) / 2
            assert soup[key].dtype == expected_dtype, key
            assert torch.equal(soup[key], mean.to(expected_dtype)), key
        if dtype == "float32":
            assert any(not torch.equal(soup[k], soup[k].to(torch.bfloat16).float()) for k in a)


# --- convert -------------------------------------------------------------------------------------


def _dtypes(path) -> set:
    with safe_open(str(path), framework="pt") as f:
        return {f.get_tensor(k).dtype for k in f.keys()}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_to_hf_dtype_and_pad_token_id(tmp_path, dtype):
    """``convert to-hf --dtype`` writes the weights in that dtype (the default is bfloat16), each the
    checkpoint's value cast; ``--pad_token_id 3`` is the pad id of config.json (default: the EOS's)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny())
    save_native(model, tmp_path / "native")
    out = tmp_path / "hf"
    flags = ["--out_dir", str(out), "--dtype", dtype, "--eos_token_id", "1", "--pad_token_id", "3"]
    main(["convert", "to-hf", "--checkpoint", str(tmp_path / "native"), *flags])
    assert _dtypes(out / "model.safetensors") == {getattr(torch, dtype)}
    config = json.loads((out / "config.json").read_text())
    assert config["pad_token_id"] == 3 and config["eos_token_id"] == 1
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        lm_head = f.get_tensor("lm_head.weight")
    assert torch.equal(lm_head, model.lm_head.weight.detach().to(getattr(torch, dtype)))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_from_hf_dtype(tmp_path, dtype):
    """``convert from-hf --dtype`` writes the native weights in that dtype (default float32), each the HF
    value cast."""
    from olmo2_lit.weights.export import export_hf

    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny())
    export_hf(model, model.config, tmp_path / "hf", dtype="float32", eos_token_id=1, pad_token_id=0)
    main(
        [
            "convert",
            "from-hf",
            "--hf_dir",
            str(tmp_path / "hf"),
            "--out_dir",
            str(tmp_path / "n"),
            "--dtype",
            dtype,
        ]
    )
    _, sd = read_native(tmp_path / "n")
    for key, value in model.state_dict().items():
        assert sd[key].dtype == getattr(torch, dtype)
        assert torch.equal(sd[key], value.to(getattr(torch, dtype))), key


def test_from_olmo_core_vocab_size_is_the_config_vocab():
    """Without a preset, ``--vocab_size 250`` is the model's vocab (the tokenizer's), under an embedding
    of 256 rows; by default the vocab is the row count."""
    from olmo2_lit.weights.olmo_core import model_config_from_shapes

    weights = Transformer(ModelConfig.tiny(vocab_size=256)).state_dict()
    assert model_config_from_shapes(weights, preset=None, n_heads=4, vocab_size=250).vocab_size == 250
    assert model_config_from_shapes(weights, preset=None, n_heads=4, vocab_size=None).vocab_size == 256
    cfg = model_config_from_shapes(weights, preset=None, n_heads=2, vocab_size=None)
    assert cfg.n_heads == 2 and cfg.head_dim == 16


# --- prepare -------------------------------------------------------------------------------------


def _stream(directory) -> list[int]:
    from olmo2_lit.data.shards import open_shard, read_tokens
    from olmo2_lit.shard_format.layout import find_shards

    manifest = json.loads((directory / "manifest.json").read_text())
    shards = [
        open_shard(p, vocab_size=manifest["vocab_size"]) for p in find_shards([str(directory / "train")])
    ]
    return [int(t) for s in shards for t in read_tokens(s, 0, s.num_tokens)]


def test_prepare_text_field_shard_size_and_progress(tmp_path, capsys):
    """``text_field: body`` reads that JSONL field; ``shard_size_tokens: 50`` closes a shard at the first
    document end after 50 tokens (every shard but the last holds >= 50 tokens and ends with EOS, and would
    hold < 50 without its last document); ``progress: false`` prints nothing."""
    from olmo2_lit.prepare.prepare import prepare

    docs = TEXT[:40]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"body": d, "text": "x"}) + "\n" for d in docs))
    tok = train_bpe(docs, vocab_size=300)
    tok.save(str(tmp_path / "tok.json"))
    summary = prepare(
        inputs=[str(tmp_path / "in.jsonl")],
        output_dir=str(tmp_path / "out"),
        tokenizer=str(tmp_path / "tok.json"),
        text_field="body",
        val_fraction=0.0,
        shard_size_tokens=50,
        progress=False,
    )
    assert capsys.readouterr().out == ""
    eos = tok.token_to_id("<|endoftext|>")
    assert _stream(tmp_path / "out") == [i for d in docs for i in [*tok.encode(d).ids, eos]]
    from olmo2_lit.data.shards import open_shard, read_tokens

    vocab = tok.get_vocab_size()
    shards = [open_shard(tmp_path / "out" / "train" / n, vocab_size=vocab) for n in summary.train_shards]
    assert len(shards) > 3
    for shard in shards[:-1]:
        tokens = read_tokens(shard, 0, shard.num_tokens).tolist()
        ends = [i for i, t in enumerate(tokens) if t == eos]
        assert tokens[-1] == eos and len(tokens) >= 50 and ends[-2] + 1 < 50


def _files_in(directory) -> set[int]:
    """The numbers of the input files whose text a prepared directory holds."""
    import re

    from olmo2_lit.shard_format.tokenizer import load_tokenizer

    text = load_tokenizer(str(directory / "tokenizer.json")).decode(_stream(directory))
    return {int(n) for n in re.findall(r"file number (\d+)", text)}


def test_prepare_max_input_bytes_seed_and_bpe_train_bytes(tmp_path):
    """``max_input_bytes`` reads only some whole files, about that many bytes, chosen by ``seed`` (another
    seed, other files); ``bpe_train_bytes`` trains the BPE on only the first characters of input (a
    tokenizer with fewer merges than the one trained on everything)."""
    from olmo2_lit.prepare.prepare import prepare

    (tmp_path / "in").mkdir()
    for i in range(20):
        (tmp_path / "in" / f"f{i:02d}.txt").write_text(f"file number {i} " * 50 + "\n")
    size = (tmp_path / "in" / "f00.txt").stat().st_size

    def run(name, **kw):
        out = str(tmp_path / name)
        prepare(
            inputs=[str(tmp_path / "in")],
            output_dir=out,
            vocab_size=300,
            val_fraction=0.0,
            progress=False,
            **kw,
        )
        return json.loads((tmp_path / name / "manifest.json").read_text())

    full, a, b = (
        run("full"),
        run("a", max_input_bytes=5 * size, seed=1),
        run("b", max_input_bytes=5 * size, seed=2),
    )
    run("a_again", max_input_bytes=5 * size, seed=1)
    assert full["documents"] == 20 and 3 <= a["documents"] <= 7 and 3 <= b["documents"] <= 7
    assert a["input_bytes"] <= 7 * size
    assert _files_in(tmp_path / "a") != _files_in(tmp_path / "b")
    assert _files_in(tmp_path / "a") == _files_in(tmp_path / "a_again")
    run("small", bpe_train_bytes=200)
    merges = [
        len(json.loads((tmp_path / d / "tokenizer.json").read_text())["model"]["merges"])
        for d in ("full", "small")
    ]
    assert merges[1] < merges[0]


def test_generate_tokenizer_overrides_the_checkpoints_own(native, capsys, tmp_path):
    """``--tokenizer`` is used instead of the directory's tokenizer.json: with that file broken, the verb
    fails without the option and prints the greedy text with it."""
    import shutil

    path, tok, model = native
    broken = tmp_path / "m"
    shutil.copytree(path, broken)
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_info:  # reported in a line naming the file
        _generate(broken, capsys)
    assert exit_info.value.code == 2
    assert f"{broken / 'tokenizer.json'}: not a readable tokenizers tokenizer.json" in capsys.readouterr().err
    (tmp_path / "good.json").write_text(tok.to_str())
    assert _generate(broken, capsys, "--tokenizer", str(tmp_path / "good.json")) == _greedy(model, tok)


def test_to_olmo_core_pad_token_id_is_in_the_fingerprint_olmo_core_checks(tmp_path):
    """``convert to-olmo-core --pad_token_id 5`` exports the data position under the fingerprint OLMo-core's
    own dataset computes with pad id 5, which differs from the default's (dolma2's 100277)."""
    from olmo_core.data import NumpyFSLDataset

    from olmo2_lit.weights.olmo_core import olmo_core_fingerprint

    path = tmp_path / "part-0.npy"
    np.arange(5000, dtype=np.uint32).tofile(path)
    shards = [[0, path.name, 5000, None]]
    fingerprints = {}
    for pad in (5, 100277):
        theirs = NumpyFSLDataset(path, sequence_length=64, pad_token_id=pad, eos_token_id=100257,
                                 vocab_size=100278, dtype=np.uint32).fingerprint  # fmt: skip
        ours = olmo_core_fingerprint(shards, vocab_size=100278, pad_token_id=pad, eos_token_id=100257,
                                     dtype="uint32", max_target_sequence_length=None)  # fmt: skip
        assert ours == theirs
        fingerprints[pad] = ours
    assert fingerprints[5] != fingerprints[100277]
