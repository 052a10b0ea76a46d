"""Model weights on disk: read an HF OLMo 2 dir, a native dir or a Lightning ``.ckpt``; write HF and
native dirs; the ``olmo2-lit convert`` verbs. The name and config mapping is
:mod:`olmo2_lit.weights.convert_hf`.

Three on-disk forms:

* **HF dir**: ``config.json``, ``generation_config.json``, ``model.safetensors`` (or
  ``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``), optionally ``tokenizer.json``.
* **native dir**: ``model.safetensors`` with our parameter names + ``model_config.json``
  (``ModelConfig.to_dict()``). What ``from_hf`` writes and ``init_from`` reads.
* **Lightning .ckpt** saved by the training module: ``state_dict`` keys ``model.<our names>`` and
  ``checkpoint["olmo2_lit"]["model_config"]``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from olmo2_lit.atomic import atomic_dir
from olmo2_lit.errors import CheckpointError, ConfigError, WeightsError
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.model.config import DOLMA2_VOCAB_SIZE
from olmo2_lit.weights.consolidate import is_sharded_checkpoint, load_sharded
from olmo2_lit.weights.convert_hf import (
    DOLMA2_EOS_TOKEN_ID,
    DOLMA2_PAD_TOKEN_ID,
    DTypeLike,
    DTypeName,
    StateDict,
    as_dtype,
    build_model,
    check_tensors,
    effective,
    hf_config_to_model_config,
    hf_to_native,
    key_listing,
    model_config_to_hf_config,
    native_shapes,
    native_to_hf,
)

HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
NATIVE_CONFIG = "model_config.json"
#: Fields a training config may change when it loads pretrained weights (``load_pretrained(config=)``):
#: how attention runs, the RoPE cache length, the init (unused), and the tokenizer size (the padded
#: size is still checked against the tensors).
OVERRIDABLE_FIELDS = frozenset(
    {
        "attention",
        "max_sequence_length",
        "init",
        "init_std",
        "init_cutoff_factor",
        "vocab_size",
        "vocab_pad_multiple",
    }
)


# ------------------------------------------------------------------------------------------- reading


def _require_file(path: Path) -> Path:
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def _load_safetensors(path: Path) -> StateDict:
    """``safetensors.torch.load_file``, with errors that name the file."""
    try:
        return load_file(_require_file(path))
    except FileNotFoundError:
        raise
    except Exception as err:  # SafetensorError derives from Exception only
        # safetensors says e.g. "Error while deserializing header: ..." without the path
        raise WeightsError(
            f"{path}: unreadable safetensors file ({err}); it is truncated or corrupt: download or export "
            "it again"
        ) from err


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(_require_file(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{path}: {what} is not valid JSON ({err})") from err


def read_hf_config(hf_dir: Union[str, Path]) -> dict:
    """The parsed ``config.json`` of an HF checkpoint directory."""
    return _read_json(Path(hf_dir) / "config.json", "the HF config")


def load_hf_state_dict(hf_dir: Union[str, Path]) -> StateDict:
    """All tensors of an HF checkpoint dir: ``model.safetensors``, or the shards its index lists."""
    hf_dir = Path(hf_dir)
    index, weights = hf_dir / HF_INDEX, hf_dir / HF_WEIGHTS
    if not index.is_file():
        if hf_dir.is_dir() and not weights.is_file():
            raise FileNotFoundError(
                f"{hf_dir} has neither {HF_WEIGHTS} nor {HF_INDEX} "
                "(.bin checkpoints are not supported; re-save with safetensors)"
            )
        return _load_safetensors(weights)
    try:
        weight_map: dict[str, str] = _read_json(index, "the safetensors index")["weight_map"]
    except (KeyError, TypeError):
        raise WeightsError(f"{index}: has no 'weight_map'; re-save the checkpoint") from None
    sd: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        sd.update(_load_safetensors(hf_dir / shard))
    listed_not_found = sorted(set(weight_map) - set(sd))
    if listed_not_found:
        raise WeightsError(f"{index} lists tensor(s) its shards lack: {key_listing(listed_not_found)}")
    return sd


def read_hf(hf_dir: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, our state dict) of an HF OLMo 2 checkpoint dir; errors are prefixed with the dir."""
    try:
        cfg = hf_config_to_model_config(read_hf_config(hf_dir))
        return cfg, hf_to_native(load_hf_state_dict(hf_dir), cfg)
    except WeightsError:
        raise
    except ValueError as err:
        raise WeightsError(f"{hf_dir}: {err}") from None


def read_native(native_dir: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, state dict) of a native dir (``model.safetensors`` + ``model_config.json``)."""
    native_dir = Path(native_dir)
    try:
        cfg = ModelConfig.from_dict(_read_json(native_dir / NATIVE_CONFIG, "the model config"))
        sd = _load_safetensors(native_dir / HF_WEIGHTS)
        check_tensors(sd, native_shapes(cfg))
    except WeightsError:
        raise
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{native_dir}: {err}") from None
    return cfg, sd


def load_lightning_checkpoint(path: Union[str, Path]) -> dict:
    """``torch.load`` of a ``.ckpt`` (memory-mapped, on CPU); an unreadable file names itself."""
    try:
        ckpt = torch.load(_require_file(Path(path)), map_location="cpu", weights_only=False, mmap=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch/pickle say e.g. "KeyError: 101" or an mmap error, naming no file
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err}); it is truncated or not a "
            ".ckpt saved by olmo2-lit fit"
        ) from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, not a Lightning checkpoint dict")
    return ckpt


def state_dict_from_lightning_checkpoint(path: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, our state dict) from a ``.ckpt`` saved by the olmo2_lit training module.

    Contract: the module keeps the transformer at ``self.model`` (keys ``model.<our names>``) and
    stores ``ModelConfig.to_dict()`` at ``checkpoint["olmo2_lit"]["model_config"]``.
    """
    path = Path(path)
    if is_sharded_checkpoint(path):  # FSDP2's directory: gather the weights (not the optimizer)
        ckpt = load_sharded(path, with_optimizer=False)
    elif path.is_dir():
        raise CheckpointError(
            f"{path} is a directory without .metadata, not a complete sharded checkpoint; pass a whole "
            "sharded checkpoint directory or a .ckpt file (`olmo2-lit convert consolidate` makes one)"
        )
    else:
        ckpt = load_lightning_checkpoint(path)
    try:
        cfg = ModelConfig.from_dict(ckpt["olmo2_lit"]["model_config"])
    except (KeyError, TypeError):
        raise CheckpointError(
            f"{path} has no checkpoint['olmo2_lit']['model_config']; "
            "was it saved by olmo2_lit's training module?"
        ) from None
    # torch.compile(model) inserts "_orig_mod." into every key; the weights are the same.
    sd = {
        k.removeprefix("model.").replace("_orig_mod.", ""): t
        for k, t in ckpt.get("state_dict", {}).items()
        if k.startswith("model.")
    }
    try:
        check_tensors(sd, native_shapes(cfg))
    except ValueError as err:
        raise CheckpointError(f"{path} (state_dict keys under 'model.'): {err}") from None
    return cfg, sd


def read_checkpoint(path: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, our state dict) from a native dir, an HF OLMo 2 dir, or a Lightning ``.ckpt`` file."""
    path = Path(path)
    if path.is_file() or is_sharded_checkpoint(path):
        return state_dict_from_lightning_checkpoint(path)
    if (path / NATIVE_CONFIG).is_file():
        return read_native(path)
    if (path / "config.json").is_file():
        return read_hf(path)
    raise FileNotFoundError(
        f"{path} is neither a Lightning .ckpt file nor a directory holding "
        f"{NATIVE_CONFIG} (native) or config.json (HF)"
    )


def _check_same_architecture(stored: ModelConfig, given: ModelConfig) -> None:
    differ = [
        f"{f.name} (weights: {effective(stored, f.name)!r}, config: {effective(given, f.name)!r})"
        for f in dataclasses.fields(ModelConfig)
        if f.name not in OVERRIDABLE_FIELDS and effective(stored, f.name) != effective(given, f.name)
    ]
    if differ:
        raise ValueError(f"field(s) differ: {'; '.join(differ)}")


def import_hf(hf_dir: Union[str, Path], *, dtype: Optional[DTypeLike] = None) -> Transformer:
    """Build our :class:`Transformer` from an HF OLMo 2 checkpoint dir.

    Args:
        hf_dir: directory with ``config.json`` and ``model.safetensors`` (or shards + index).
        dtype: cast the weights to this; None keeps the stored dtype.
    """
    return build_model(*read_hf(hf_dir), dtype=dtype)


def load_native(native_dir: Union[str, Path], *, dtype: Optional[DTypeLike] = None) -> Transformer:
    """Build our :class:`Transformer` from a native dir written by :func:`save_native`."""
    return build_model(*read_native(native_dir), dtype=dtype)


def load_pretrained(
    path: Union[str, Path], *, config: Optional[ModelConfig] = None, dtype: Optional[DTypeLike] = None
) -> Transformer:
    """The model behind ``init_from: <path>``: a native dir, an HF OLMo 2 dir or a Lightning ``.ckpt``.

    Args:
        path: where the weights are.
        config: build the model from this config instead of the stored one. Only
            ``OVERRIDABLE_FIELDS`` (attention backend, RoPE cache length, init, tokenizer size) may
            differ; the padded vocab must still give the stored number of embedding rows.
        dtype: cast the weights to this; None keeps the stored dtype.
    """
    stored, sd = read_checkpoint(path)
    if config is not None:
        try:
            _check_same_architecture(stored, config)
            check_tensors(sd, native_shapes(config))
        except ValueError as err:
            raise WeightsError(f"{path} does not fit the given config: {err}") from None
    return build_model(config or stored, sd, dtype=dtype)


# ------------------------------------------------------------------------------------------- writing


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; pick a new out_dir or remove it")


@contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """An :func:`atomic_dir` for ``out_dir`` after checking it is new or empty."""
    _check_out_dir(out_dir)
    with atomic_dir(out_dir) as tmp:
        yield tmp


def _write_json(path: Path, data: dict) -> None:
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
        _write_json(out_dir / HF_INDEX, index)
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
        _require_file(Path(tokenizer_json))
    with _atomic_dir(out_dir) as tmp:
        _write_json(tmp / "config.json", hf_config)
        _write_json(tmp / "generation_config.json", {k: v for k, v in ids.items() if v is not None})
        n_shards = _write_safetensors(hf_sd, tmp, dtype=dtype, max_shard_size=max_shard_size)
        if tokenizer_json is not None:
            shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
    return n_shards


def save_native(model: Transformer, out_dir: Union[str, Path]) -> None:
    """Write ``model`` as a native dir: ``model.safetensors`` (our names, its dtype) + ``model_config.json``.

    Atomic, like :func:`export_hf`; read it back with :func:`load_native` or :func:`load_pretrained`.
    """
    sd = {k: t.detach().cpu().contiguous() for k, t in model.state_dict().items()}
    with _atomic_dir(Path(out_dir)) as tmp:
        _write_json(tmp / NATIVE_CONFIG, model.config.to_dict())
        save_file(sd, tmp / HF_WEIGHTS, metadata={"format": "pt"})


# ----------------------------------------------------------------------------------------- CLI verbs


def from_hf(*, hf_dir: str, out_dir: str, dtype: DTypeName = "float32") -> None:
    """Convert a Hugging Face OLMo 2 checkpoint into a native olmo2_lit weights directory.

    Args:
        hf_dir: local HF checkpoint dir (config.json + model.safetensors or shards + index), e.g. a
            snapshot of allenai/OLMo-2-0425-1B.
        out_dir: directory to create with model.safetensors and model_config.json; must not exist or be empty.
        dtype: dtype of the written weights: float32 | bfloat16 | float16.
    """
    _check_out_dir(Path(out_dir))
    model = import_hf(hf_dir, dtype=dtype)
    save_native(model, out_dir)
    print(f"from_hf: {model.num_params():,} params ({dtype}) from {hf_dir} -> {out_dir}")


def token_ids_for_export(
    cfg: ModelConfig, data: Optional[dict], *, eos_token_id: Optional[int], pad_token_id: Optional[int]
) -> tuple[int, int, str]:
    """The EOS and pad ids to export, and where they came from.

    EOS: the one given, else the training data's (the checkpoint's datamodule state records it), else
    dolma2's when the model has dolma2's vocab (OLMO2.md §6). Pad: the one given, else dolma2's pad
    beside dolma2's EOS, else the EOS id (what HF generation falls back to anyway).

    Raises:
        ConfigError: no EOS id given and none recorded, for a vocab that is not dolma2's.
    """
    source = "given"
    if eos_token_id is None:
        if data and data.get("eos_token_id") is not None:
            eos_token_id, source = int(data["eos_token_id"]), "the checkpoint's training data"
        elif cfg.vocab_size == DOLMA2_VOCAB_SIZE:
            eos_token_id, source = DOLMA2_EOS_TOKEN_ID, "dolma2's, as the vocab is dolma2's"
        else:
            raise ConfigError(
                f"no EOS id recorded with these weights and vocab_size {cfg.vocab_size} is not dolma2's: "
                "pass --eos_token_id (the id appended after each document; see the shards' .meta.json)"
            )
    if pad_token_id is None:
        pad_token_id = DOLMA2_PAD_TOKEN_ID if eos_token_id == DOLMA2_EOS_TOKEN_ID else eos_token_id
    return eos_token_id, pad_token_id, source


def to_hf(
    *,
    checkpoint: str,
    out_dir: str,
    dtype: DTypeName = "bfloat16",
    tokenizer_json: Optional[str] = None,
    eos_token_id: Optional[int] = None,
    pad_token_id: Optional[int] = None,
    max_shard_size: int = 5_000_000_000,
) -> None:
    """Convert a training checkpoint into a Hugging Face Olmo2ForCausalLM directory.

    Args:
        checkpoint: a Lightning .ckpt saved by olmo2_lit training, a sharded (FSDP2) checkpoint directory,
            or a native weights directory (an HF
            OLMo 2 directory also works, e.g. to re-save it in another dtype).
        out_dir: directory to create; must not exist or be empty.
        dtype: dtype of the written weights: float32 | bfloat16 | float16.
        tokenizer_json: path of a tokenizer.json to copy into out_dir.
        eos_token_id: end-of-text id written to config.json and generation_config.json. None: the one
            the checkpoint's training data recorded, else dolma2's (100257) for dolma2's vocab.
        pad_token_id: padding id written likewise. None: dolma2's (100277) beside dolma2's EOS, else
            the EOS id.
        max_shard_size: bytes per safetensors file; larger checkpoints are sharded with an index.
    """
    _check_out_dir(Path(out_dir))
    cfg, sd = read_checkpoint(checkpoint)
    data = None
    if Path(checkpoint).is_file():
        data = load_lightning_checkpoint(checkpoint).get("TokenShardDataModule")
    eos_token_id, pad_token_id, source = token_ids_for_export(
        cfg, data, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    n_shards = export_hf(
        sd,
        cfg,
        out_dir,
        dtype=dtype,
        tokenizer_json=tokenizer_json,
        max_shard_size=max_shard_size,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    n_params = sum(t.numel() for t in sd.values())
    print(
        f"to_hf: {n_params:,} params ({dtype}, {n_shards} file(s)) from {checkpoint} -> {out_dir}; "
        f"eos_token_id {eos_token_id} ({source}), pad_token_id {pad_token_id}"
    )
