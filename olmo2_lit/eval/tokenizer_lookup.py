"""Find and check the tokenizer a model was trained with.

A Lightning ``.ckpt`` does not store its tokenizer, but the run does: LightningCLI writes the fit's
``config.yaml`` into the log version directory (``runs/<name>/version_N/``, the checkpoint's parent's
parent by default), whose ``data`` section names the shards, and each shard written by ``olmo2-lit
prepare`` has a sidecar naming its ``tokenizer.json`` (beside the shard directory) and its sha256.
:func:`tokenizer_from_run` follows that chain; anything else needs an explicit tokenizer path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml
from tokenizers import Tokenizer

from olmo2_lit.model import ModelConfig
from olmo2_lit.shard_format.sidecar import read_meta
from olmo2_lit.shard_format.tokenizer import load_tokenizer, tokenizer_sha256


def _data_paths(config_yaml: Path) -> list[Path]:
    """Shard paths and directories named by a fit's config.yaml (train sources, val, prepare)."""
    cfg = yaml.safe_load(config_yaml.read_text()) or {}
    data = cfg.get("data") or {}
    data = data.get("init_args", data)
    paths = [p for src in data.get("train_sources") or [] for p in (src.get("paths") or [])]
    paths += list(data.get("val_paths") or [])
    prepared = data.get("prepare_if_missing") or {}
    if prepared.get("output_dir"):
        paths += [str(Path(prepared["output_dir"]) / "train"), str(Path(prepared["output_dir"]) / "val")]
    return [Path(p) for p in paths]


def _sidecar_tokenizer(shard_path: Path) -> Optional[tuple[Path, str]]:
    """(tokenizer.json, sha256) recorded by the first sidecar under ``shard_path``, if any."""
    metas = [shard_path.with_suffix(".meta.json")] if shard_path.is_file() else []
    if shard_path.is_dir():
        metas = sorted(shard_path.glob("*.meta.json"))[:1]
    for meta_file in metas:
        meta = read_meta(meta_file.with_name(meta_file.name.removesuffix(".meta.json") + ".npy"))
        if meta is None:
            continue
        shard_dir = meta_file.parent
        for candidate in (shard_dir / meta.tokenizer, shard_dir.parent / meta.tokenizer):
            if candidate.is_file():
                return candidate, meta.tokenizer_sha256
    return None


def tokenizer_from_run(checkpoint: Path) -> Optional[Path]:
    """The tokenizer.json recorded for the run that wrote ``checkpoint`` (a ``.ckpt``), or None.

    Looks for ``config.yaml`` in the checkpoint's directory and its two parents; returns the
    tokenizer only if its sha256 equals the one the shard sidecar recorded.
    """
    for folder in list(checkpoint.resolve().parents)[:3]:
        config_yaml = folder / "config.yaml"
        if not config_yaml.is_file():
            continue
        for data_path in _data_paths(config_yaml):
            found = _sidecar_tokenizer(data_path)
            if found is not None and tokenizer_sha256(load_tokenizer(str(found[0]))) == found[1]:
                return found[0]
    return None


def check_vocab(tokenizer: Tokenizer, config: ModelConfig, *, source: str) -> None:
    """The tokenizer must fit the model's vocabulary.

    When the model records its tokenizer size (``vocab_size`` below its padded size: our checkpoints),
    the tokenizer must have exactly that many tokens, special tokens included. A released HF checkpoint
    records only the padded row count (``vocab_size == padded_vocab_size``, e.g. 100,352 for OLMo 2);
    then the tokenizer must be no larger and pad to the same rows (dolma2's 100,278 does).

    Raises:
        ValueError: naming ``source`` and both sizes.
    """
    n = tokenizer.get_vocab_size(with_added_tokens=True)
    multiple = config.vocab_pad_multiple
    if config.vocab_size != config.padded_vocab_size:
        ok = n == config.vocab_size
    else:
        ok = n <= config.vocab_size and -(-n // multiple) * multiple == config.padded_vocab_size
    if not ok:
        raise ValueError(
            f"{source}: tokenizer has {n} tokens but the model was trained with vocab_size "
            f"{config.vocab_size}; pass the tokenizer.json the model was trained with"
        )
