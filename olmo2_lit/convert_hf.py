"""Move weights between olmo2_lit and Hugging Face ``Olmo2ForCausalLM``, and in and out of our own formats.

Three on-disk forms:

* **HF dir**: ``config.json``, ``generation_config.json``, ``model.safetensors`` (or
  ``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``), optionally ``tokenizer.json``.
* **native dir**: ``model.safetensors`` with our parameter names + ``model_config.json``
  (``ModelConfig.to_dict()``). What ``from_hf`` writes and ``init_from`` reads.
* **Lightning .ckpt** saved by the training module: ``state_dict`` keys ``model.<our names>`` and
  ``checkpoint["olmo2_lit"]["model_config"]``.

Vocab padding: HF's ``vocab_size`` is the number of embedding rows, i.e. our ``padded_vocab_size``
(100,352 for OLMo 2, OLMO2.md §6). ``export_hf`` writes that, plus our tokenizer size and pad multiple
under an extra ``"olmo2_lit"`` key that transformers keeps and ignores, so export -> import gives back
the same ``ModelConfig``. A config without that key (a released checkpoint) imports with
``vocab_size`` = the padded size; ``load_pretrained(config=...)`` accepts a training config whose
tokenizer size pads to the same number of rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal, Mapping, Optional, Union

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from olmo2_lit.atomic import atomic_dir
from olmo2_lit.model import ModelConfig, Transformer

StateDict = dict[str, torch.Tensor]
DTypeLike = Union[str, torch.dtype]
#: dtype names the CLI verbs accept (a Literal, so jsonargparse rejects typos).
DTypeName = Literal["float32", "bfloat16", "float16"]

#: dolma2 tokenizer ids (OLMO2.md §6; OLMo-2-1124-7B generation_config.json): EOS, PAD; no BOS.
DOLMA2_EOS_TOKEN_ID = 100_257
DOLMA2_PAD_TOKEN_ID = 100_277
HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
NATIVE_CONFIG = "model_config.json"
#: Extra config.json key carrying what HF has no field for (see module docstring).
VOCAB_HINT_KEY = "olmo2_lit"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# ---------------------------------------------------------------------------------------------- tables

#: Our parameter name <-> HF state-dict key; ``{i}`` is the block index. The one table that both
#: directions read. OLMO2.md §1.1 (OLMo-core ``nn/hf/convert.py``); HF shapes in LIGHTNING.md §7.
WEIGHT_KEYS: tuple[tuple[str, str], ...] = (
    ("embeddings.weight", "model.embed_tokens.weight"),
    ("blocks.{i}.attention.w_q.weight", "model.layers.{i}.self_attn.q_proj.weight"),
    ("blocks.{i}.attention.w_k.weight", "model.layers.{i}.self_attn.k_proj.weight"),
    ("blocks.{i}.attention.w_v.weight", "model.layers.{i}.self_attn.v_proj.weight"),
    ("blocks.{i}.attention.w_out.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    ("blocks.{i}.attention.q_norm.weight", "model.layers.{i}.self_attn.q_norm.weight"),
    ("blocks.{i}.attention.k_norm.weight", "model.layers.{i}.self_attn.k_norm.weight"),
    ("blocks.{i}.attention_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("blocks.{i}.feed_forward.w1.weight", "model.layers.{i}.mlp.gate_proj.weight"),
    ("blocks.{i}.feed_forward.w3.weight", "model.layers.{i}.mlp.up_proj.weight"),
    ("blocks.{i}.feed_forward.w2.weight", "model.layers.{i}.mlp.down_proj.weight"),
    ("blocks.{i}.feed_forward_norm.weight", "model.layers.{i}.post_feedforward_layernorm.weight"),
    ("norm.weight", "model.norm.weight"),
    ("lm_head.weight", "lm_head.weight"),
)
_KEY_PATTERNS = tuple(tuple(re.compile(re.escape(t).replace(r"\{i\}", r"(\d+)")) for t in row) for row in WEIGHT_KEYS)

_REQUIRED = object()
#: ModelConfig field <-> HF Olmo2Config key, with HF's class default for a key that config.json omits
#: (LIGHTNING.md §7). ``vocab_size`` and RoPE are not 1:1 and have their own helpers.
CONFIG_FIELDS: tuple[tuple[str, str, object], ...] = (
    ("d_model", "hidden_size", _REQUIRED),
    ("n_layers", "num_hidden_layers", _REQUIRED),
    ("n_heads", "num_attention_heads", _REQUIRED),
    ("n_kv_heads", "num_key_value_heads", None),  # None means n_heads on both sides
    ("mlp_hidden", "intermediate_size", _REQUIRED),
    ("max_sequence_length", "max_position_embeddings", 2048),
    ("norm_eps", "rms_norm_eps", 1e-5),
    ("init_std", "initializer_range", 0.02),
)

#: HF keys whose value is fixed for OLMo 2, with why (OLMO2.md §1.4: no biases, no dropout, untied
#: embeddings, SwiGLU). Written on export; any other value is refused on import.
FIXED_HF_VALUES: dict[str, tuple[object, str]] = {
    "hidden_act": ("silu", "the MLP is SwiGLU"),
    "attention_bias": (False, "the model has no biases"),
    "attention_dropout": (0.0, "the model has no dropout"),
    "tie_word_embeddings": (False, "embeddings and lm_head are separate tensors"),
}

#: ModelConfig values HF Olmo2 can represent (OLMO2.md §1.1-1.2); other values cannot be exported.
OLMO2_COMPONENTS: dict[str, object] = {
    "block": "reordered_norm", "norm": "rms_norm", "mlp": "swiglu", "qk_norm": True, "clip_qkv": None,
}

#: Fields a training config may change when it loads pretrained weights (``load_pretrained(config=)``):
#: how attention runs, the RoPE cache length, the init (unused), and the tokenizer size (the padded
#: size is still checked against the tensors).
OVERRIDABLE_FIELDS = frozenset(
    {"attention", "max_sequence_length", "init", "init_std", "init_cutoff_factor", "vocab_size", "vocab_pad_multiple"}
)


def _rename(key: str, *, to_hf: bool) -> Optional[str]:
    """Translate one state-dict key through WEIGHT_KEYS; None when no row matches."""
    src, dst = (0, 1) if to_hf else (1, 0)
    for patterns, row in zip(_KEY_PATTERNS, WEIGHT_KEYS):
        match = patterns[src].fullmatch(key)
        if match:
            return row[dst].replace("{i}", match.group(1)) if match.groups() else row[dst]
    return None


def _as_dtype(dtype: DTypeLike) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; valid: {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------------------------- configs

def _check_hf_config(hf: dict) -> None:
    if hf.get("model_type") != "olmo2":
        raise ValueError(f"config.json model_type={hf.get('model_type')!r}: only 'olmo2' is supported")
    architectures = hf.get("architectures", ["Olmo2ForCausalLM"])
    if architectures != ["Olmo2ForCausalLM"]:
        raise ValueError(f"config.json architectures={architectures!r}: only ['Olmo2ForCausalLM'] is supported")
    for key, (value, why) in FIXED_HF_VALUES.items():
        if hf.get(key, value) != value:
            raise ValueError(f"config.json {key}={hf[key]!r} is not supported: needs {value!r} ({why})")
    if hf.get("rope_scaling") is not None:
        raise ValueError(f"config.json rope_scaling={hf['rope_scaling']!r} is not supported: only plain RoPE")
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * hf.get("num_attention_heads", 0) != hf.get("hidden_size"):
        raise ValueError(f"config.json head_dim={head_dim} is not supported: needs hidden_size / num_attention_heads")


def _rope_theta_from_hf(hf: dict) -> float:
    """v5 writes ``rope_parameters``, v4 ``rope_theta`` (LIGHTNING.md §7); accept either, or both if equal."""
    params = hf.get("rope_parameters") or {}
    for key, value in params.items():
        if key not in ("rope_type", "rope_theta") or (key == "rope_type" and value != "default"):
            raise ValueError(f"config.json rope_parameters.{key}={value!r} is not supported: only plain RoPE")
    thetas = {float(t) for t in (params.get("rope_theta"), hf.get("rope_theta")) if t is not None}
    if len(thetas) > 1:
        raise ValueError(f"config.json rope_theta={hf['rope_theta']} disagrees with "
                         f"rope_parameters.rope_theta={params['rope_theta']}")
    return thetas.pop() if thetas else 10_000.0  # HF's default when neither is given


def _vocab_from_hf(hf: dict) -> tuple[int, int]:
    """(vocab_size, vocab_pad_multiple) whose padded size is config.json's vocab_size."""
    if "vocab_size" not in hf:
        raise ValueError("config.json has no vocab_size")
    rows = hf["vocab_size"]
    hint = hf.get(VOCAB_HINT_KEY)
    if hint is None:  # a released checkpoint: the tokenizer size is not recorded
        return rows, math.gcd(rows, 128)  # any divisor of rows pads rows to itself; 128 as OLMo 2 does
    size, multiple = hint["vocab_size"], hint["vocab_pad_multiple"]
    if -(-size // multiple) * multiple != rows:
        raise ValueError(f"config.json {VOCAB_HINT_KEY}.vocab_size={size} padded to a multiple of {multiple} "
                         f"does not give vocab_size={rows}")
    return size, multiple


def hf_config_to_model_config(hf: dict) -> ModelConfig:
    """Read an HF ``config.json`` dict of an OLMo 2 checkpoint into a :class:`ModelConfig`.

    Args:
        hf: the parsed ``config.json``.

    Raises:
        ValueError: another architecture, or a setting our model cannot represent (attention biases,
            tied embeddings, scaled RoPE, ...); the message names the field and its value.
    """
    _check_hf_config(hf)
    fields = {}
    for ours, key, default in CONFIG_FIELDS:
        if default is _REQUIRED and key not in hf:
            raise ValueError(f"config.json has no {key}")
        fields[ours] = hf.get(key, default)
    if fields["n_kv_heads"] == fields["n_heads"]:
        fields["n_kv_heads"] = None  # plain multi-head attention, as the presets spell it
    vocab_size, vocab_pad_multiple = _vocab_from_hf(hf)
    return ModelConfig(**fields, **OLMO2_COMPONENTS, vocab_size=vocab_size, vocab_pad_multiple=vocab_pad_multiple,
                       rope_theta=_rope_theta_from_hf(hf))


def _check_hf_representable(cfg: ModelConfig) -> None:
    for name, value in OLMO2_COMPONENTS.items():
        if getattr(cfg, name) != value:
            raise ValueError(f"ModelConfig.{name}={getattr(cfg, name)!r} has no HF Olmo2 equivalent (needs {value!r})")


def _check_token_ids(cfg: ModelConfig, ids: dict[str, Optional[int]]) -> None:
    for name, value in ids.items():
        if value is not None and not 0 <= value < cfg.vocab_size:
            raise ValueError(f"{name}={value} is outside the vocabulary (vocab_size={cfg.vocab_size}); "
                             "pass your tokenizer's ids")


def model_config_to_hf_config(cfg: ModelConfig, *, eos_token_id: int = DOLMA2_EOS_TOKEN_ID,
                              pad_token_id: Optional[int] = DOLMA2_PAD_TOKEN_ID,
                              bos_token_id: Optional[int] = None, dtype: DTypeLike = "bfloat16") -> dict:
    """The HF ``config.json`` dict for ``cfg``, readable by transformers v4 and v5.

    Args:
        cfg: an OLMo 2 model config (reordered-norm blocks, RMSNorm, SwiGLU, QK-norm, no clipping).
        eos_token_id: end-of-text id (dolma2: 100257).
        pad_token_id: padding id (dolma2: 100277).
        bos_token_id: beginning-of-text id (OLMo 2 uses none).
        dtype: dtype the weights are stored in, written as ``dtype`` (v5) and ``torch_dtype`` (v4).
    """
    _check_hf_representable(cfg)
    _check_token_ids(cfg, {"eos_token_id": eos_token_id, "pad_token_id": pad_token_id, "bos_token_id": bos_token_id})
    name = _dtype_name(_as_dtype(dtype))
    hf = {"architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2"}
    hf.update({key: _effective(cfg, ours) for ours, key, _ in CONFIG_FIELDS})
    hf.update({key: value for key, (value, _) in FIXED_HF_VALUES.items()})
    hf.update(vocab_size=cfg.padded_vocab_size, rope_theta=cfg.rope_theta,
              rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
              eos_token_id=eos_token_id, pad_token_id=pad_token_id, bos_token_id=bos_token_id,
              use_cache=True, dtype=name, torch_dtype=name)
    hf[VOCAB_HINT_KEY] = {"vocab_size": cfg.vocab_size, "vocab_pad_multiple": cfg.vocab_pad_multiple}
    return hf


# ---------------------------------------------------------------------------------------- state dicts

def native_shapes(cfg: ModelConfig) -> dict[str, torch.Size]:
    """Our parameter names and shapes for ``cfg`` (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = Transformer(cfg, init_weights=False)
    return {key: t.shape for key, t in model.state_dict().items()}


def _hf_shapes(cfg: ModelConfig) -> dict[str, torch.Size]:
    _check_hf_representable(cfg)
    return {_rename(key, to_hf=True): shape for key, shape in native_shapes(cfg).items()}


def _listing(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" (and {len(keys) - 5} more)" if len(keys) > 5 else "")


def check_tensors(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]) -> None:
    """Raise ``ValueError`` naming every missing, unexpected or wrongly shaped tensor."""
    problems = []
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} expected {tuple(s)}, got {tuple(sd[k].shape)}" for k, s in expected.items()
             if k in sd and sd[k].shape != s]
    if missing:
        problems.append(f"missing tensor(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected tensor(s): {_listing(unexpected)}")
    if wrong:
        problems.append(f"wrong shape(s): {_listing(wrong)}")
    if problems:
        raise ValueError("; ".join(problems))


def hf_to_native(hf_sd: Mapping[str, torch.Tensor], cfg: ModelConfig) -> StateDict:
    """HF ``Olmo2ForCausalLM`` state dict -> ours. Errors name the HF key (and shapes)."""
    check_tensors(hf_sd, _hf_shapes(cfg))
    return {_rename(key, to_hf=False): t for key, t in hf_sd.items()}


def native_to_hf(sd: Mapping[str, torch.Tensor], cfg: ModelConfig) -> StateDict:
    """Our state dict -> HF ``Olmo2ForCausalLM`` keys. Errors name our key (and shapes)."""
    _check_hf_representable(cfg)
    check_tensors(sd, native_shapes(cfg))
    return {_rename(key, to_hf=True): t for key, t in sd.items()}


def build_model(cfg: ModelConfig, sd: Mapping[str, torch.Tensor], *, dtype: Optional[DTypeLike] = None) -> Transformer:
    """A :class:`Transformer` holding ``sd`` (our names), without allocating a second copy.

    Args:
        cfg: the model config; ``sd`` must match it exactly.
        sd: our state dict.
        dtype: cast the weights to this; None keeps the stored dtype.
    """
    check_tensors(sd, native_shapes(cfg))
    if dtype is not None:
        sd = {k: t.to(_as_dtype(dtype)) for k, t in sd.items()}
    with torch.device("meta"):
        model = Transformer(cfg, init_weights=False)
    model.load_state_dict(sd, strict=True, assign=True)
    # Non-persistent buffers (the RoPE tables) are not in sd and are still on meta, which .to(device)
    # cannot copy. They start empty and are built on first use, so an empty real tensor restores them.
    for module in model.modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_meta:
                if buf.numel():
                    raise RuntimeError(f"buffer {name} of {type(module).__name__} is built at construction; "
                                       "build_model can only restore buffers that start empty")
                setattr(module, name, torch.empty(0, dtype=buf.dtype))
    return model


# ------------------------------------------------------------------------------------------- reading

def _require_file(path: Path) -> Path:
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def read_hf_config(hf_dir: Union[str, Path]) -> dict:
    """The parsed ``config.json`` of an HF checkpoint directory."""
    return json.loads(_require_file(Path(hf_dir) / "config.json").read_text())


def load_hf_state_dict(hf_dir: Union[str, Path]) -> StateDict:
    """All tensors of an HF checkpoint dir: ``model.safetensors``, or the shards its index lists."""
    hf_dir = Path(hf_dir)
    index, weights = hf_dir / HF_INDEX, hf_dir / HF_WEIGHTS
    if not index.is_file():
        if hf_dir.is_dir() and not weights.is_file():
            raise FileNotFoundError(f"{hf_dir} has neither {HF_WEIGHTS} nor {HF_INDEX} "
                                    "(.bin checkpoints are not supported; re-save with safetensors)")
        return load_file(_require_file(weights))
    weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    sd: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        sd.update(load_file(_require_file(hf_dir / shard)))
    listed_not_found = sorted(set(weight_map) - set(sd))
    if listed_not_found:
        raise ValueError(f"{index} lists tensor(s) its shards lack: {_listing(listed_not_found)}")
    return sd


def read_hf(hf_dir: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, our state dict) of an HF OLMo 2 checkpoint dir; errors are prefixed with the dir."""
    try:
        cfg = hf_config_to_model_config(read_hf_config(hf_dir))
        return cfg, hf_to_native(load_hf_state_dict(hf_dir), cfg)
    except ValueError as err:
        raise ValueError(f"{hf_dir}: {err}") from None


def read_native(native_dir: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, state dict) of a native dir (``model.safetensors`` + ``model_config.json``)."""
    native_dir = Path(native_dir)
    try:
        cfg = ModelConfig.from_dict(json.loads(_require_file(native_dir / NATIVE_CONFIG).read_text()))
        sd = load_file(_require_file(native_dir / HF_WEIGHTS))
        check_tensors(sd, native_shapes(cfg))
    except ValueError as err:
        raise ValueError(f"{native_dir}: {err}") from None
    return cfg, sd


def state_dict_from_lightning_checkpoint(path: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, our state dict) from a ``.ckpt`` saved by the olmo2_lit training module.

    Contract: the module keeps the transformer at ``self.model`` (keys ``model.<our names>``) and
    stores ``ModelConfig.to_dict()`` at ``checkpoint["olmo2_lit"]["model_config"]``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory (a sharded FSDP/DeepSpeed checkpoint?); consolidate it into one "
                         "file first: python -m lightning.pytorch.utilities.consolidate_checkpoint " + str(path))
    ckpt = torch.load(_require_file(path), map_location="cpu", weights_only=False, mmap=True)
    try:
        cfg = ModelConfig.from_dict(ckpt["olmo2_lit"]["model_config"])
    except (KeyError, TypeError):
        raise ValueError(f"{path} has no checkpoint['olmo2_lit']['model_config']; "
                         "was it saved by olmo2_lit's training module?") from None
    # torch.compile(model) inserts "_orig_mod." into every key; the weights are the same.
    sd = {k.removeprefix("model.").replace("_orig_mod.", ""): t
          for k, t in ckpt.get("state_dict", {}).items() if k.startswith("model.")}
    try:
        check_tensors(sd, native_shapes(cfg))
    except ValueError as err:
        raise ValueError(f"{path} (state_dict keys under 'model.'): {err}") from None
    return cfg, sd


def read_checkpoint(path: Union[str, Path]) -> tuple[ModelConfig, StateDict]:
    """(config, our state dict) from a native dir, an HF OLMo 2 dir, or a Lightning ``.ckpt`` file."""
    path = Path(path)
    if path.is_file():
        return state_dict_from_lightning_checkpoint(path)
    if (path / NATIVE_CONFIG).is_file():
        return read_native(path)
    if (path / "config.json").is_file():
        return read_hf(path)
    raise FileNotFoundError(f"{path} is neither a Lightning .ckpt file nor a directory holding "
                            f"{NATIVE_CONFIG} (native) or config.json (HF)")


def _effective(cfg: ModelConfig, field: str):
    """A field's value with None resolved (``n_kv_heads: None`` means ``n_heads``)."""
    return cfg.kv_heads if field == "n_kv_heads" else getattr(cfg, field)


def _check_same_architecture(stored: ModelConfig, given: ModelConfig) -> None:
    differ = [f"{f.name} (weights: {_effective(stored, f.name)!r}, config: {_effective(given, f.name)!r})"
              for f in dataclasses.fields(ModelConfig)
              if f.name not in OVERRIDABLE_FIELDS and _effective(stored, f.name) != _effective(given, f.name)]
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


def load_pretrained(path: Union[str, Path], *, config: Optional[ModelConfig] = None,
                    dtype: Optional[DTypeLike] = None) -> Transformer:
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
            raise ValueError(f"{path} does not fit the given config: {err}") from None
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


def _write_safetensors(sd: Mapping[str, torch.Tensor], out_dir: Path, *, dtype: torch.dtype,
                       max_shard_size: int) -> int:
    """Write ``sd`` cast to ``dtype`` as HF-style (possibly sharded) safetensors; returns the shard count."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    shards = _plan_shards({k: t.numel() * itemsize for k, t in sd.items()}, max_shard_size)
    names = [HF_WEIGHTS] if len(shards) == 1 else [
        f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for keys, name in zip(shards, names):  # cast one shard at a time: peak memory is one shard
        tensors = {k: sd[k].detach().to(device="cpu", dtype=dtype).contiguous() for k in keys}
        save_file(tensors, out_dir / name, metadata={"format": "pt"})
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(t.numel() for t in sd.values()) * itemsize},
                 "weight_map": {k: name for keys, name in zip(shards, names) for k in keys}}
        _write_json(out_dir / HF_INDEX, index)
    return len(shards)


def export_hf(model_or_state_dict: Union[nn.Module, Mapping[str, torch.Tensor]], cfg: ModelConfig,
              out_dir: Union[str, Path], *, dtype: DTypeLike = "bfloat16", tokenizer_json: Optional[str] = None,
              max_shard_size: int = 5_000_000_000, eos_token_id: int = DOLMA2_EOS_TOKEN_ID,
              pad_token_id: Optional[int] = DOLMA2_PAD_TOKEN_ID, bos_token_id: Optional[int] = None) -> int:
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
    out_dir, dtype = Path(out_dir), _as_dtype(dtype)
    sd = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else model_or_state_dict
    hf_config = model_config_to_hf_config(cfg, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                                          bos_token_id=bos_token_id, dtype=dtype)
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


def to_hf(*, checkpoint: str, out_dir: str, dtype: DTypeName = "bfloat16", tokenizer_json: Optional[str] = None,
          eos_token_id: int = DOLMA2_EOS_TOKEN_ID, pad_token_id: int = DOLMA2_PAD_TOKEN_ID,
          max_shard_size: int = 5_000_000_000) -> None:
    """Convert a training checkpoint into a Hugging Face Olmo2ForCausalLM directory.

    Args:
        checkpoint: a Lightning .ckpt saved by olmo2_lit training, or a native weights directory (an HF
            OLMo 2 directory also works, e.g. to re-save it in another dtype).
        out_dir: directory to create; must not exist or be empty.
        dtype: dtype of the written weights: float32 | bfloat16 | float16.
        tokenizer_json: path of a tokenizer.json to copy into out_dir.
        eos_token_id: end-of-text id written to config.json and generation_config.json (dolma2: 100257).
        pad_token_id: padding id written likewise (dolma2: 100277).
        max_shard_size: bytes per safetensors file; larger checkpoints are sharded with an index.
    """
    _check_out_dir(Path(out_dir))
    cfg, sd = read_checkpoint(checkpoint)
    n_shards = export_hf(sd, cfg, out_dir, dtype=dtype, tokenizer_json=tokenizer_json, max_shard_size=max_shard_size,
                         eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    n_params = sum(t.numel() for t in sd.values())
    print(f"to_hf: {n_params:,} params ({dtype}, {n_shards} file(s)) from {checkpoint} -> {out_dir}")
