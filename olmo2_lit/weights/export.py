"""Writing weights: an HF OLMo 2 directory (``export_hf``) and our native directory (``save_native``),
each atomically (a temp directory renamed into place)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import save_file
from torch import nn

from olmo2_lit.atomic import atomic_dir
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.convert_hf import (
    DOLMA2_EOS_TOKEN_ID,
    DOLMA2_PAD_TOKEN_ID,
    DTypeLike,
    as_dtype,
    model_config_to_hf_config,
)
from olmo2_lit.weights.pretrained import HF_INDEX, HF_WEIGHTS, NATIVE_CONFIG, require_file
from olmo2_lit.weights.state_dicts import native_to_hf

# ------------------------------------------------------------------------------------------- writing


def check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; pick a new out_dir or remove it")


@contextmanager
def atomic_out_dir(out_dir: Path) -> Iterator[Path]:
    """An :func:`atomic_dir` for ``out_dir`` after checking it is new or empty."""
    check_out_dir(out_dir)
    with atomic_dir(out_dir) as tmp:
        yield tmp


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON with sorted keys (config files meant to be read and diffed)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _plan_shards(sizes: Mapping[str, int], max_shard_size: int) -> list[list[str]]:
    """Group keys in order into shards of at most ``max_shard_size`` bytes (a larger tensor goes alone)."""
    shards: list[list[str]] = [[]]
    used = 0
    for key, size in sizes.items():
        if shards[-1] and used + size > max_shard_size:
            shards.append([])
            used = 0
        shards[-1].append(key)
        used += size
    return shards


def _write_safetensors(
    sd: Mapping[str, torch.Tensor], out_dir: Path, *, dtype: torch.dtype, max_shard_size: int
) -> int:
    """Write ``sd`` cast to ``dtype`` as HF-style (possibly sharded) safetensors; returns the shard count."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    shards = _plan_shards({k: t.numel() * itemsize for k, t in sd.items()}, max_shard_size)
    names = (
        [HF_WEIGHTS]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    for keys, name in zip(shards, names):  # cast one shard at a time: peak memory is one shard
        tensors = {k: sd[k].detach().to(device="cpu", dtype=dtype).contiguous() for k in keys}
        save_file(tensors, out_dir / name, metadata={"format": "pt"})
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() for t in sd.values()) * itemsize},
            "weight_map": {k: name for keys, name in zip(shards, names) for k in keys},
        }
        write_json(out_dir / HF_INDEX, index)
    return len(shards)


def export_hf(
    model_or_state_dict: Union[nn.Module, Mapping[str, torch.Tensor]],
    cfg: ModelConfig,
    out_dir: Union[str, Path],
    *,
    dtype: DTypeLike = "bfloat16",
    tokenizer_json: Optional[str] = None,
    max_shard_size: int = 5_000_000_000,
    eos_token_id: int = DOLMA2_EOS_TOKEN_ID,
    pad_token_id: Optional[int] = DOLMA2_PAD_TOKEN_ID,
    bos_token_id: Optional[int] = None,
) -> int:
    """Write an HF ``Olmo2ForCausalLM`` checkpoint dir that ``from_pretrained`` loads. Atomic.

    Args:
        model_or_state_dict: our :class:`Transformer` or its state dict.
        cfg: its config.
        out_dir: directory to create (must not exist or be empty).
        dtype: dtype of the written weights: float32 | bfloat16 | float16.
        tokenizer_json: a ``tokenizer.json`` to copy next to the weights.
        max_shard_size: bytes per safetensors file; larger checkpoints are sharded with an index.
        eos_token_id: written to config.json and generation_config.json (dolma2: 100257).
        pad_token_id: likewise (dolma2: 100277).
        bos_token_id: likewise (OLMo 2: none).

    Returns:
        The number of safetensors files written.
    """
    out_dir, dtype = Path(out_dir), as_dtype(dtype)
    sd = (
        model_or_state_dict.state_dict()
        if isinstance(model_or_state_dict, nn.Module)
        else model_or_state_dict
    )
    hf_config = model_config_to_hf_config(
        cfg, eos_token_id=eos_token_id, pad_token_id=pad_token_id, bos_token_id=bos_token_id, dtype=dtype
    )
    ids = {"eos_token_id": eos_token_id, "pad_token_id": pad_token_id, "bos_token_id": bos_token_id}
    hf_sd = native_to_hf(sd, cfg)
    if tokenizer_json is not None:
        require_file(Path(tokenizer_json))
    with atomic_out_dir(out_dir) as tmp:
        write_json(tmp / "config.json", hf_config)
        write_json(tmp / "generation_config.json", {k: v for k, v in ids.items() if v is not None})
        n_shards = _write_safetensors(hf_sd, tmp, dtype=dtype, max_shard_size=max_shard_size)
        if tokenizer_json is not None:
            shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
    return n_shards


def save_native(model: Transformer, out_dir: Union[str, Path]) -> None:
    """Write ``model`` as a native dir: ``model.safetensors`` (our names, its dtype) + ``model_config.json``.

    Atomic, like :func:`export_hf`; read it back with :func:`load_native` or :func:`load_pretrained`.
    """
    sd = {k: t.detach().cpu().contiguous() for k, t in model.state_dict().items()}
    with atomic_out_dir(Path(out_dir)) as tmp:
        write_json(tmp / NATIVE_CONFIG, model.config.to_dict())
        save_file(sd, tmp / HF_WEIGHTS, metadata={"format": "pt"})
