"""Find and check the tokenizer a model was trained with.

A Lightning ``.ckpt`` does not store its tokenizer, but the run does: LightningCLI writes the fit's
``config.yaml`` into the log version directory (``runs/<name>/version_N/``, the checkpoint's parent's
parent by default), whose ``data`` section names the shards, and each shard written by ``olmo2-lit
prepare`` has a sidecar naming its ``tokenizer.json`` (beside the shard directory) and its sha256.
:func:`tokenizer_from_run` follows that chain, reading the sidecars as the datamodule does
(``olmo2_lit.shard_format.identity``); anything else needs an explicit tokenizer path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml
from tokenizers import Tokenizer

from olmo2_lit.errors import ConfigError
from olmo2_lit.model import ModelConfig
from olmo2_lit.shard_format.identity import recorded_tokenizer


def _data_paths(config_yaml: Path) -> list[str]:
    """Shard paths and directories named by a fit's config.yaml (train sources, val, prepare)."""
    cfg = yaml.safe_load(config_yaml.read_text()) or {}
    data = cfg.get("data") or {}
    data = data.get("init_args", data)
    paths = [p for src in data.get("train_sources") or [] for p in (src.get("paths") or [])]
    paths += list(data.get("val_paths") or [])
    prepared = data.get("prepare_if_missing") or {}
    if prepared.get("output_dir"):
        paths += [str(Path(prepared["output_dir"]) / "train"), str(Path(prepared["output_dir"]) / "val")]
    return [str(p) for p in paths]


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
            recorded = recorded_tokenizer([data_path])
            if recorded is not None and recorded.path is not None:
                return recorded.path
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
        raise ConfigError(
            f"{source}: tokenizer has {n} tokens but the model was trained with vocab_size "
            f"{config.vocab_size}; pass the tokenizer.json the model was trained with"
        )
