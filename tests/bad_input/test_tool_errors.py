"""``olmo2-lit prepare`` and ``convert``: bad input ends in one short message naming the file (and byte,
field or line), and nothing that existed before is changed or deleted."""

import json
import stat

import pytest
import torch
from conftest import assert_short_error, snapshot

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.export import save_native


def _prepare(inputs, out, *extra):
    return [
        "prepare",
        f"--inputs={json.dumps([str(p) for p in inputs])}",
        f"--output_dir={out}",
        "--vocab_size=300",
        "--progress=false",
        "--num_workers=1",
        *extra,
    ]


def _docs(path, n=40):
    path.write_text(
        "".join(json.dumps({"text": f"document {i}: def f{i}(x): return x * {i}\n"}) + "\n" for i in range(n))
    )
    return path


@pytest.fixture
def prepared(tmp_path, cli):
    """A finished prepare output (two runs share the inputs)."""
    src = _docs(tmp_path / "docs.jsonl")
    code, out = cli(_prepare([src], tmp_path / "out", "--val_fraction=0.2"))
    assert code == 0, out
    return src, tmp_path / "out"


def test_overwrite_refuses_files_it_did_not_write(tmp_path, prepared, cli):
    """Guards against: `prepare --overwrite` deleting a user's train/NOTES.txt."""
    src, out = prepared
    (out / "train" / "NOTES.txt").write_text("my notes")
    before = snapshot(tmp_path)
    code, msg = cli(_prepare([src], out, "--overwrite=true"))
    assert_short_error(code, msg, "NOTES.txt", "its manifest.json does not list")
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_only_its_own_files(tmp_path, prepared, cli):
    """Guards against: --overwrite removing anything beside its own shards (a README at the top stays)."""
    src, out = prepared
    (out / "README.md").write_text("about this data")
    code, msg = cli(_prepare([src], out, "--overwrite=true", "--seed=1"))
    assert code == 0, msg
    assert (out / "README.md").read_text() == "about this data" and (out / "manifest.json").exists()


def test_without_overwrite_a_finished_output_is_kept(tmp_path, prepared, cli):
    """Guards against: a second prepare silently replacing finished shards."""
    src, out = prepared
    before = snapshot(tmp_path)
    code, msg = cli(_prepare([src], out))
    assert_short_error(code, msg, "manifest.json", "--overwrite")
    assert snapshot(tmp_path) == before


def test_foreign_tokenizer_json_is_not_replaced(tmp_path, cli):
    """Guards against: prepare overwriting a tokenizer.json it did not write."""
    src = _docs(tmp_path / "docs.jsonl")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tokenizer.json").write_text("{}")
    before = snapshot(tmp_path)
    code, msg = cli(_prepare([src], tmp_path / "out", "--overwrite=true"))
    assert_short_error(code, msg, "tokenizer.json", "prepare did not write")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "name, content, culprits",
    [
        ("empty.jsonl", b"", ["empty.jsonl", "gave no documents"]),
        ("blank.txt", b"", ["blank.txt", "gave no documents"]),
        (
            "latin1.txt",
            "caf\u00e9 au lait\n".encode("latin-1"),
            ["latin1.txt", "not UTF-8 at byte 3", "e9", "--encoding_errors replace"],
        ),
        ("latin1.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n', ["latin1.jsonl", "not UTF-8 at byte 28"]),
        ("broken.jsonl", b'{"text": "ok"}\n{broken\n', ["broken.jsonl:2", "invalid JSON"]),
        ("field.jsonl", b'{"body": "ok"}\n', ["field.jsonl:1", "no string field 'text'", "text_field"]),
    ],
)
def test_bad_input_text_is_named_and_nothing_is_written(tmp_path, cli, name, content, culprits):
    """Guards against: empty input exiting 0 with 0 documents, non-UTF-8 bytes replaced silently, and
    broken JSONL naming no line; in every case no output is left behind."""
    (tmp_path / name).write_bytes(content)
    before = snapshot(tmp_path)
    code, msg = cli(_prepare([tmp_path / name], tmp_path / "out"))
    assert_short_error(code, msg, *culprits)
    assert snapshot(tmp_path) == before


def test_encoding_errors_replace_is_the_documented_switch(tmp_path, cli):
    """Guards against: no way to accept non-UTF-8 input on purpose."""
    (tmp_path / "latin1.txt").write_bytes(("caf\u00e9 " * 200 + "\n").encode("latin-1") * 20)
    code, msg = cli(
        _prepare([tmp_path / "latin1.txt"], tmp_path / "out", "--encoding_errors=replace", "--val_fraction=0")
    )
    assert code == 0, msg and (tmp_path / "out" / "manifest.json").exists()


def test_missing_input_is_named(tmp_path, cli):
    """Guards against: a typo in an input path ending in a traceback."""
    code, msg = cli(_prepare([tmp_path / "nope.jsonl"], tmp_path / "out"))
    assert_short_error(code, msg, "nope.jsonl: input not found")
    assert not (tmp_path / "out").exists()


def test_empty_validation_split_warns_with_the_numbers(tmp_path, cli):
    """Guards against: a small input getting an empty validation split without a word."""
    src = _docs(tmp_path / "few.jsonl", n=3)
    with pytest.warns(
        UserWarning, match=r"validation split is empty: val_fraction 0.01 of 3 documents is 0.03"
    ):
        code, msg = cli(_prepare([src], tmp_path / "out", "--val_fraction=0.01"))
    assert code == 0, msg


@pytest.fixture
def tiny_native(tmp_path):
    """A native weights dir of a 1-layer model with a 256-token vocab (no data metadata)."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=256, d_model=16, n_layers=1, n_heads=2, mlp_hidden=32)
    save_native(Transformer(cfg), tmp_path / "native")
    return tmp_path / "native"


def test_to_hf_of_a_garbage_ckpt_names_it(tmp_path, cli):
    """Guards against: torch's mmap/pickle message naming no file."""
    (tmp_path / "junk.ckpt").write_bytes(b"\x00garbage" * 100)
    before = snapshot(tmp_path)
    code, msg = cli(
        ["convert", "to-hf", f"--checkpoint={tmp_path / 'junk.ckpt'}", f"--out_dir={tmp_path / 'hf'}"]
    )
    assert_short_error(code, msg, "junk.ckpt: not a readable checkpoint")
    assert snapshot(tmp_path) == before


def test_truncated_safetensors_names_the_file(tmp_path, tiny_native, cli):
    """Guards against: a truncated model.safetensors giving a deserializer error naming no file."""
    weights = tiny_native / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    before = snapshot(tmp_path)
    code, msg = cli(
        [
            "convert",
            "to-hf",
            f"--checkpoint={tiny_native}",
            f"--out_dir={tmp_path / 'hf'}",
            "--eos_token_id=0",
        ]
    )
    assert_short_error(code, msg, str(weights), "truncated or corrupt")
    assert snapshot(tmp_path) == before


def test_small_vocab_export_without_eos_asks_for_it(tmp_path, tiny_native, cli):
    """Guards against: assuming dolma2's EOS (100257) for a 256-token model and failing obscurely."""
    before = snapshot(tmp_path)
    code, msg = cli(["convert", "to-hf", f"--checkpoint={tiny_native}", f"--out_dir={tmp_path / 'hf'}"])
    assert_short_error(code, msg, "vocab_size 256 is not dolma2's", "--eos_token_id")
    assert snapshot(tmp_path) == before


def test_to_hf_into_a_non_empty_dir_is_refused(tmp_path, tiny_native, cli):
    """Guards against: an export mixing its files into an existing directory."""
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, msg = cli(
        [
            "convert",
            "to-hf",
            f"--checkpoint={tiny_native}",
            f"--out_dir={tmp_path / 'hf'}",
            "--eos_token_id=0",
        ]
    )
    assert_short_error(code, msg, "hf already exists and is not empty")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("broken", ["missing", "bad_json"])
def test_from_hf_names_the_directory_or_file(tmp_path, cli, broken):
    """Guards against: a missing HF dir or a corrupt config.json giving a JSONDecodeError traceback."""
    hf = tmp_path / "hf"
    if broken == "bad_json":
        hf.mkdir()
        (hf / "config.json").write_text("{oops")
    before = snapshot(tmp_path)
    code, msg = cli(["convert", "from-hf", f"--hf_dir={hf}", f"--out_dir={tmp_path / 'native'}"])
    assert_short_error(code, msg, str(hf / "config.json") if broken == "bad_json" else str(hf))
    assert snapshot(tmp_path) == before


def test_export_files_follow_the_umask(tmp_path, tiny_native, cli):
    """Guards against: model.safetensors written 0600 while the other files are 0644."""
    code, msg = cli(
        [
            "convert",
            "to-hf",
            f"--checkpoint={tiny_native}",
            f"--out_dir={tmp_path / 'hf'}",
            "--eos_token_id=0",
        ]
    )
    assert code == 0, msg
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "hf").iterdir()}
    assert modes and set(modes.values()) == {0o666 & ~umask}, modes


@pytest.mark.parametrize(
    "weights, culprits",
    [
        (None, ["soup needs at least two checkpoints, got 1", "soup A B --out DIR"]),
        (["--weights+", "1", "--weights+", "-1"], ["--weights must be >= 0", "[1.0, -1.0]"]),
        (["--weights+", "1"], ["--weights has 1 values for 2 checkpoints"]),
        (["--weights", "1"], ["--weights takes a list", "--weights+ 1"]),
    ],
)
def test_bad_soup_arguments_are_named(tmp_path, tiny_native, cli, weights, culprits):
    """Guards against: soup of one checkpoint, or negative or too few weights, ending in a ValueError
    traceback; nothing is written."""
    inputs = [tiny_native] if weights is None else [tiny_native, tiny_native]
    before = snapshot(tmp_path)
    code, msg = cli(["soup", *inputs, f"--out={tmp_path / 'soup'}", *(weights or [])])
    assert_short_error(code, msg, *culprits)
    assert snapshot(tmp_path) == before


def test_soup_of_two_model_sizes_names_both(tmp_path, tiny_native, cli):
    """Guards against: checkpoints of two architectures ending in a ValueError traceback."""
    cfg = ModelConfig(vocab_size=256, d_model=16, n_layers=2, n_heads=2, mlp_hidden=32)
    save_native(Transformer(cfg), tmp_path / "two_layers")
    before = snapshot(tmp_path)
    code, msg = cli(["soup", tiny_native, tmp_path / "two_layers", f"--out={tmp_path / 'soup'}"])
    assert_short_error(code, msg, "two_layers does not have the architecture of", "one model config")
    assert snapshot(tmp_path) == before


def test_to_olmo_core_of_a_non_checkpoint_names_it(tmp_path, cli):
    """Guards against: `_pickle.UnpicklingError: invalid load key` naming no file."""
    (tmp_path / "docs.jsonl").write_text('{"text": "hi"}\n')
    before = snapshot(tmp_path)
    code, msg = cli(
        ["convert", "to-olmo-core", f"--checkpoint={tmp_path / 'docs.jsonl'}", f"--out={tmp_path / 'oc'}"]
    )
    assert_short_error(code, msg, "docs.jsonl: not a readable checkpoint")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "case, culprits",
    [
        ("small_vocab", ["vocab_size must exceed 257", "got 100", "--tokenizer"]),
        ("no_inputs", ["--inputs is empty"]),
        ("inputs_not_a_list", ["--inputs takes a list", "--inputs+"]),
        ("out_is_a_file", ["--output_dir", "notes.txt is a file, not a directory"]),
        ("prepared_dir_as_input", ["the output of olmo2-lit prepare", "--data.train_sources"]),
        ("tokenizer_not_json", ["docs.jsonl: not a readable tokenizers tokenizer.json"]),
    ],
)
def test_bad_prepare_arguments_are_named_and_leave_nothing(tmp_path, cli, case, culprits):
    """Guards against: `--vocab_size 100` (no BPE merges fit) ending in a ValueError traceback and an empty
    output directory left behind, a file as --output_dir giving `[Errno 20] Not a directory:
    '.../.prepare-staging/work'`, and a prepared directory as input read as JSONL (`manifest.json:1:
    invalid JSON`)."""
    src = _docs(tmp_path / "docs.jsonl")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "prepared" / "train").mkdir(parents=True)
    (tmp_path / "prepared" / "manifest.json").write_text("{}")
    out = tmp_path / ("notes.txt" if case == "out_is_a_file" else "out")
    args = {
        "small_vocab": _prepare([src], out)[:-3]
        + ["--vocab_size=100", "--progress=false", "--num_workers=1"],
        "no_inputs": _prepare([], out),
        "inputs_not_a_list": ["prepare", "--inputs", str(src), f"--output_dir={out}"],
        "out_is_a_file": _prepare([src], out),
        "prepared_dir_as_input": _prepare([tmp_path / "prepared"], out),
        "tokenizer_not_json": _prepare([src], out, f"--tokenizer={src}"),
    }[case]
    before = snapshot(tmp_path)
    code, msg = cli(args)
    assert_short_error(code, msg, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "source, output, culprits",
    [
        ("missing.yaml", None, ["--source", "missing.yaml: not a file"]),
        ("shard.npy", None, ["--source", "shard.npy: not text", "not a data file"]),
        ("no_paths.yaml", None, ["no_paths.yaml: no data.paths list"]),
        ("broken.yaml", None, ["--source", "broken.yaml: not valid YAML"]),
        (
            "olmo.yaml",
            "notes.txt",
            ["--output", "notes.txt exists and was not written by olmo2-lit data-paths"],
        ),
        ("olmo.yaml", "adir", ["--output", "adir is a directory"]),
    ],
)
def test_bad_data_paths_input_is_named_and_nothing_is_replaced(tmp_path, cli, source, output, culprits):
    """Guards against: `data-paths --output` replacing a file it did not write (a user's notes gone), a
    data file or a config without data.paths ending in a UnicodeDecodeError or ValueError traceback."""
    (tmp_path / "olmo.yaml").write_text("data:\n  paths:\n    - s3://ai2-llm/preprocessed/x/part-0.npy\n")
    (tmp_path / "no_paths.yaml").write_text("data: {paths: 3}\n")
    (tmp_path / "broken.yaml").write_text("data:\n  paths: [a\n")
    (tmp_path / "shard.npy").write_bytes(bytes([0xD9, 0xFF, 0x00, 0x01]))
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "adir").mkdir()
    args = ["data-paths", f"--source={tmp_path / source}", f"--mirror={tmp_path}", "--allow_missing=true"]
    before = snapshot(tmp_path)
    code, msg = cli(args + ([f"--output={tmp_path / output}"] if output else []))
    assert_short_error(code, msg, *culprits)
    assert snapshot(tmp_path) == before


def test_data_paths_replaces_its_own_output(tmp_path, cli):
    """The guard above refuses nothing data-paths wrote: a rerun replaces its own file."""
    (tmp_path / "olmo.yaml").write_text("data:\n  paths:\n    - s3://ai2-llm/preprocessed/x/part-0.npy\n")
    args = [
        "data-paths",
        f"--source={tmp_path / 'olmo.yaml'}",
        f"--mirror={tmp_path}",
        "--allow_missing=true",
    ]
    for _ in range(2):
        code, msg = cli([*args, f"--output={tmp_path / 'mirror.yaml'}"])
        assert code == 0, msg
    assert f"- {tmp_path / 'preprocessed/x/part-0.npy'}" in (tmp_path / "mirror.yaml").read_text()


def test_unknown_verb_lists_every_verb_and_the_closest(cli):
    """Guards against: `olmo2-lit fitt` answered with jsonargparse's list of the tool verbs alone, which
    leaves out fit, validate, test and predict (so the user is told `fit` is no choice)."""
    code, msg = cli(["fitt"])
    assert_short_error(
        code, msg, "unknown verb 'fitt'", "did you mean 'fit'?", "fit, validate, test, predict"
    )


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_consolidate_of_a_file_or_nothing_says_what_it_takes(tmp_path, cli, kind):
    """Guards against: `consolidate` of a .ckpt file answered 'is not a sharded checkpoint directory (no
    .metadata file in it)', which does not say that the file needs no consolidation."""
    ckpt = tmp_path / "last.ckpt"
    if kind == "file":
        ckpt.write_bytes(b"not read")
    before = snapshot(tmp_path)
    code, msg = cli(["convert", "consolidate", f"--checkpoint={ckpt}", f"--out={tmp_path / 'one.ckpt'}"])
    expected = "is already one file" if kind == "file" else "not found; pass a sharded checkpoint directory"
    assert_short_error(code, msg, f"--checkpoint {ckpt}", expected)
    assert snapshot(tmp_path) == before
