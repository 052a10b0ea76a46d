"""``olmo2-lit data-paths``: a published config's URLs -> a local mirror, in order, repeats kept."""

import re

import numpy as np
import pytest
import yaml

from olmo2_lit.cli import main
from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource

KEYS = [
    "preprocessed/pile/dolma2-tokenizer/part-00-00000.npy",
    "preprocessed/dclm/dolma2-tokenizer/part-01-00000.npy",
    "preprocessed/dclm/dolma2-tokenizer/part-00-00000.npy",
]


@pytest.fixture
def mirror(tmp_path):
    """A mirror with three raw uint32 files of 3, 2 and 4 instances of 16 tokens."""
    for i, (key, n) in enumerate(zip(KEYS, (3, 2, 4))):
        path = tmp_path / "mirror" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        np.full(n * 16, i + 1, dtype=np.uint32).tofile(path)
    return tmp_path / "mirror"


def test_olmo_config_urls_become_mirror_paths_in_the_published_order(tmp_path, mirror):
    """Guards against reordering, deduplicating or mis-mapping the paths: any of those changes instance ids.
    The OLMo-format YAML lists s3:// and http:// URLs, one file twice (OLMo's upsampling)."""
    published = {
        "seed": 6198,
        "data": {
            "drop_last": True,
            "paths": [
                f"http://olmo-data.org/{KEYS[2]}",
                f"s3://ai2-llm/{KEYS[0]}",
                f"http://olmo-data.org/{KEYS[1]}",
                f"s3://ai2-llm/{KEYS[2]}",
            ],
        },
    }
    source = tmp_path / "OLMo2-7B-stage1.yaml"
    source.write_text(yaml.safe_dump(published))
    out = tmp_path / "mirror.yaml"
    main(["data-paths", "--source", str(source), "--mirror", str(mirror), "--output", str(out)])
    paths = yaml.safe_load(out.read_text())["data"]["train_sources"][0]["paths"]
    assert paths == [
        str(mirror / KEYS[2]),
        str(mirror / KEYS[0]),
        str(mirror / KEYS[1]),
        str(mirror / KEYS[2]),
    ]
    dm = TokenShardDataModule(
        vocab_size=100278,
        dtype="uint32",
        sequence_length=16,
        global_batch_size=2,
        micro_batch_size=1,
        train_sources=[DataSource(paths=paths)],
    )
    dm.setup("fit")
    # instance ids follow the listed order: 4 (part-00 of dclm), 3 (pile), 2 (dclm part-01), 4 again
    assert [dm.instance_location(i)[0] for i in (0, 3, 4, 7, 9, 12)] == [
        paths[0],
        paths[0],
        paths[1],
        paths[2],
        paths[3],
        paths[3],
    ]
    assert dm._train.epoch_size == 4 + 3 + 2 + 4


def test_olmo_core_data_mix_substitutes_the_tokenizer(tmp_path, mirror, capsys):
    """Guards the OLMo-core data-mix format (label,path with {TOKENIZER}, comments skipped), printed."""
    mix = tmp_path / "OLMoE-mix-0824.txt"
    mix.write_text(
        "# a comment\n\n" + "\n".join(f"x,{k.replace('dolma2-tokenizer', '{TOKENIZER}')}" for k in KEYS)
    )
    main(["data-paths", "--source", str(mix), "--mirror", str(mirror), "--tokenizer", "dolma2-tokenizer"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["train_sources"][0]["paths"] == [str(mirror / k) for k in KEYS]


def test_missing_files_are_an_error_naming_the_first(tmp_path, mirror, capsys):
    """Guards against writing a source list that fails later at setup, or silently shifts instance ids."""
    listing = tmp_path / "paths.txt"
    listing.write_text(f"s3://ai2-llm/{KEYS[0]}\nhttp://olmo-data.org/preprocessed/not/there.npy\n")
    with pytest.raises(SystemExit) as exit_info:  # olmo2-lit reports it in a line, exit status 2
        main(
            [
                "data-paths",
                "--source",
                str(listing),
                "--mirror",
                str(mirror),
                "--output",
                str(tmp_path / "o.yaml"),
            ]
        )
    assert exit_info.value.code == 2
    assert re.search(
        r"1 of 2 files are not in the mirror .*preprocessed/not/there.npy", capsys.readouterr().err
    )
    assert not (tmp_path / "o.yaml").exists()
    main(
        [
            "data-paths",
            "--source",
            str(listing),
            "--mirror",
            str(mirror),
            "--output",
            str(tmp_path / "o.yaml"),
            "--allow_missing",
            "true",
        ]
    )
    assert len(yaml.safe_load((tmp_path / "o.yaml").read_text())["data"]["train_sources"][0]["paths"]) == 2
