"""Model weights on disk, read: an HF OLMo 2 dir, a native dir or a Lightning ``.ckpt`` (writing is
:mod:`olmo2_lit.weights.export`, the ``convert`` verbs :mod:`olmo2_lit.weights.verbs`; the name and
config mapping is :mod:`olmo2_lit.weights.convert_hf`).

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
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import load_file

from olmo2_lit.errors import CheckpointError, WeightsError
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.consolidate import is_deepspeed_checkpoint, is_sharded_checkpoint, load_sharded
from olmo2_lit.weights.convert_hf import DTypeLike, StateDict, effective, hf_config_to_model_config
from olmo2_lit.weights.state_dicts import build_model, check_tensors, hf_to_native, key_listing, native_shapes

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


def require_file(path: Path) -> Path:
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def _load_safetensors(path: Path) -> StateDict:
    """``safetensors.torch.load_file``, with errors that name the file."""
    try:
        return load_file(require_file(path))
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
        return json.loads(require_file(path).read_text())
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
        ckpt = torch.load(require_file(Path(path)), map_location="cpu", weights_only=False, mmap=True)
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
    elif is_deepspeed_checkpoint(path):  # DeepSpeed's: the same from ZeRO's partitions (needs deepspeed)
        from olmo2_lit.weights.deepspeed_state import load_deepspeed

        ckpt = load_deepspeed(path, with_optimizer=False)
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
    if path.is_file() or is_sharded_checkpoint(path) or is_deepspeed_checkpoint(path):
        return state_dict_from_lightning_checkpoint(path)
    if (path / NATIVE_CONFIG).is_file():
        return read_native(path)
    if (path / "config.json").is_file():
        return read_hf(path)
    raise FileNotFoundError(
        f"{path} is neither a Lightning .ckpt file nor a directory holding "
        f"{NATIVE_CONFIG} (native) or config.json (HF)"
    )


def check_same_architecture(stored: ModelConfig, given: ModelConfig) -> None:
    """Raise if ``stored`` and ``given`` differ in a field that is not overridable (one that shapes
    the weights)."""
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
            check_same_architecture(stored, config)
            check_tensors(sd, native_shapes(config))
        except ValueError as err:
            raise WeightsError(f"{path} does not fit the given config: {err}") from None
    return build_model(config or stored, sd, dtype=dtype)
