"""Which tokenizer made a set of shards, read from their sidecars: the one function everyone calls."""

import numpy as np
import pytest
import yaml

from olmo2_lit.eval.tokenizer_lookup import tokenizer_from_run
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.prepare.prepare import prepare
from olmo2_lit.shard_format.identity import recorded_tokenizer
from olmo2_lit.shard_format.tokenizer import load_tokenizer, tokenizer_sha256


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
    (root / "in").mkdir()
    for i in range(20):  # one document a file
        (root / "in" / f"{i}.txt").write_text(f"def f{i}(x):\n    return x + {i}\n" * 20)
    prepare(
        inputs=[str(root / "in")],
        output_dir=str(root / "d"),
        vocab_size=300,
        val_fraction=0.3,
        progress=False,
    )
    (root / "raw").mkdir()
    np.zeros(64, dtype=np.uint16).tofile(root / "raw" / "part-0.npy")
    return root


def test_the_prepared_tokenizer_is_found_from_a_directory_a_glob_or_a_file(prepared):
    d = prepared / "d"
    sha = tokenizer_sha256(load_tokenizer(str(d / "tokenizer.json")))
    for paths in ([str(d / "train")], [str(d / "train" / "*.npy")], [str(d / "val" / "part-00000.npy")]):
        recorded = recorded_tokenizer(paths)
        assert (recorded.path, recorded.sha256, recorded.name) == (
            d / "tokenizer.json",
            sha,
            "tokenizer.json",
        )
    # raw shards and paths that do not exist are passed over to the first sidecar
    recorded = recorded_tokenizer([str(prepared / "raw"), str(prepared / "missing"), str(d / "val")])
    assert recorded.shard == d / "val" / "part-00000.npy" and recorded.load().to_str() == (
        load_tokenizer(str(d / "tokenizer.json")).to_str()
    )
    assert recorded_tokenizer([str(prepared / "raw")]) is None


def test_another_tokenizer_under_the_recorded_name_is_not_used(prepared, tmp_path):
    d = tmp_path / "d"
    (d / "train").mkdir(parents=True)
    for f in (prepared / "d" / "train").iterdir():
        (d / "train" / f.name).write_bytes(f.read_bytes())
    train_bpe(["something else entirely"] * 50, vocab_size=280).save(str(d / "tokenizer.json"))
    recorded = recorded_tokenizer([str(d / "train")])
    assert recorded.path is None and recorded.load() is None
    assert recorded.sha256 == tokenizer_sha256(load_tokenizer(str(prepared / "d" / "tokenizer.json")))


def test_a_checkpoint_finds_its_tokenizer_through_the_run_config(prepared, tmp_path):
    """``tokenizer_lookup`` has no datamodule: it reads the data paths of config.yaml the same way."""
    version = tmp_path / "runs" / "version_0"
    (version / "checkpoints").mkdir(parents=True)
    data = {"train_sources": [{"paths": [str(prepared / "raw")]}], "val_paths": [str(prepared / "d" / "val")]}
    (version / "config.yaml").write_text(yaml.safe_dump({"data": {"init_args": data}}))
    assert tokenizer_from_run(version / "checkpoints" / "last.ckpt") == prepared / "d" / "tokenizer.json"
    (version / "config.yaml").write_text(yaml.safe_dump({"data": {"train_sources": [{"paths": ["/no"]}]}}))
    assert tokenizer_from_run(version / "checkpoints" / "last.ckpt") is None
