"""``olmo2-lit data-paths``: a published config's data path list -> the same files in a local mirror.

Instance ids number the instances of the shards in the order the paths are listed, repeats included
(OLMo upsamples by listing a file twice, OLMO2.md §4.2). So a user who points a recipe at their copy of
OLMo-mix in the published order gets the published instance ids, and with the recipe's seed and
``data.order`` the published batches.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import yaml

from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import ConfigError, DataNotFoundError, OutputExistsError

#: The first line of every file data-paths writes: what marks a file it may replace.
HEADER = "# olmo2-lit data-paths"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def read_published_paths(source: str, *, tokenizer: str = "allenai/dolma2-tokenizer") -> list[str]:
    """The data paths of a published config, in order, repeats kept.

    Args:
        source: an OLMo trainer YAML (``data.paths``, e.g. ``configs/official-1124/OLMo2-7B-stage1.yaml``),
            an OLMo-core data-mix file (``label,path`` lines with ``{TOKENIZER}``, e.g.
            ``src/olmo_core/data/mixes/OLMoE-mix-0824.txt``), or a text file with one path or URL a line.
        tokenizer: what ``{TOKENIZER}`` in a data-mix file stands for (OLMo-core's ``DataMix.build`` with
            dolma2: ``allenai/dolma2-tokenizer``).
    """
    if not Path(source).is_file():
        raise ConfigError(
            f"--source {source}: not a file; pass the published config (OLMo YAML, data-mix .txt)"
        )
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"--source {source}: not text (byte {err.start} is not UTF-8); pass the published config, not "
            "a data file"
        ) from None
    if Path(source).suffix in (".yaml", ".yml"):
        try:
            config = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(
                f"--source {source}: not valid YAML ({err}); pass the published config"
            ) from None
        data = config.get("data") if isinstance(config, dict) else None
        paths = data.get("paths") if isinstance(data, dict) else None
        if not isinstance(paths, list) or not paths:
            raise ConfigError(
                f"{source}: no data.paths list (an OLMo trainer config lists its files there); pass such "
                "a config"
            )
        return [str(p) for p in paths]
    paths = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line:  # an OLMo-core data mix: label,path
            line = line.split(",", 1)[1].strip()
            if "{TOKENIZER}" not in line:
                raise ConfigError(f"{source}:{number}: a data-mix line without {{TOKENIZER}}: {line}")
        paths.append(line.replace("{TOKENIZER}", tokenizer))
    if not paths:
        raise ConfigError(f"{source}: no paths found; it should list one path or URL a line")
    return paths


def mirror_path(path: str, mirror: str) -> str:
    """``s3://bucket/key`` or ``http://host/key`` -> ``mirror/key``; a relative path -> ``mirror/path``."""
    if _URL.match(path):
        key = urlparse(path).path.lstrip("/")
    elif Path(path).is_absolute():
        raise ConfigError(
            f"{path}: an absolute local path, not a URL; list it relative to the data root instead"
        )
    else:
        key = path
    if not key:
        raise ConfigError(f"{path}: no file path after the host or bucket; fix that line of --source")
    return str(Path(mirror) / key)


def _check_output(output: Path) -> None:
    """``--output`` may replace only a file that data-paths wrote (its first line is our header)."""
    if output.is_dir():
        raise ConfigError(f"--output {output} is a directory; pass the YAML file to write")
    if output.exists():
        with open(output, "rb") as f:
            first = f.readline()
        if not first.startswith(HEADER.encode()):
            raise OutputExistsError(
                f"--output {output} exists and was not written by olmo2-lit data-paths (no '{HEADER}' first "
                "line); pick another --output or move it away"
            )


def data_paths(
    source: str,
    mirror: str,
    output: Optional[str] = None,
    tokenizer: str = "allenai/dolma2-tokenizer",
    allow_missing: bool = False,
) -> None:
    """Turn the data path list of a published OLMo / OLMo-core config into a recipe's training sources.

    Each URL keeps its key and drops the scheme and host or bucket, so ``s3://ai2-llm/preprocessed/x.npy``
    and ``http://olmo-data.org/preprocessed/x.npy`` both become ``MIRROR/preprocessed/x.npy``. The paths
    keep the published order and repeats as one source, so instance ids are the published ones. Layer the
    written file on a recipe:

        olmo2-lit data-paths --source OLMo2-7B-stage1.yaml --mirror /data/ai2-llm --output mirror.yaml
        olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml \\
            --config mirror.yaml

    Args:
        source: the published config: an OLMo trainer YAML (its ``data.paths``), an OLMo-core data-mix
            ``.txt`` (``label,path`` lines), or a text file of one path or URL a line.
        mirror: the local directory that holds the files under their keys (``MIRROR/preprocessed/...``).
        output: the YAML file to write (``data.train_sources``); None prints it.
        tokenizer: what ``{TOKENIZER}`` in an OLMo-core data mix stands for.
        allow_missing: write the list even if some files are not in the mirror yet (default: an error
            naming the first missing file and the count).
    """
    if output is not None:
        _check_output(Path(output))
    published = read_published_paths(source, tokenizer=tokenizer)
    local = [mirror_path(p, mirror) for p in published]
    missing = [p for p in local if not Path(p).is_file()]
    if missing and not allow_missing:
        raise DataNotFoundError(
            f"{len(missing)} of {len(local)} files are not in the mirror {mirror}, e.g. "
            f"{missing[0]}; download them or pass --allow_missing true"
        )
    header = (
        f"{HEADER} --source {source} --mirror {mirror}\n"
        f"# {len(local)} paths ({len(set(local))} distinct) in the published order: "
        "the published instance ids\n"
    )
    body = yaml.safe_dump({"data": {"train_sources": [{"paths": local}]}}, sort_keys=False, width=1 << 16)
    if output is None:
        sys.stdout.write(header + body)
    else:
        with atomic_file(output, "w") as f:
            f.write(header + body)
        print(f"{output}: {len(local)} paths ({len(missing)} missing) under {mirror}")
