"""The mapping between olmo2_lit and Hugging Face ``Olmo2ForCausalLM``: configs, tensor names, shapes.

One table of tensor names (``WEIGHT_KEYS``) and one of config fields (``CONFIG_FIELDS``) serve both
directions. Reading and writing files is in :mod:`olmo2_lit.weights.pretrained`.

Vocab padding: HF's ``vocab_size`` is the number of embedding rows, i.e. our ``padded_vocab_size``
(100,352 for OLMo 2, OLMO2.md §6). ``export_hf`` writes that, plus our tokenizer size and pad multiple
under an extra ``"olmo2_lit"`` key that transformers keeps and ignores, so export -> import gives back
the same ``ModelConfig``. A config without that key (a released checkpoint) imports with
``vocab_size`` = the padded size; ``load_pretrained(config=...)`` accepts a training config whose
tokenizer size pads to the same number of rows.
"""

from __future__ import annotations

import math
import re
from typing import Literal, Optional, Union

import torch

from olmo2_lit.errors import ConfigError
from olmo2_lit.model import ModelConfig

StateDict = dict[str, torch.Tensor]
DTypeLike = Union[str, torch.dtype]
#: dtype names the CLI verbs accept (a Literal, so jsonargparse rejects typos).
DTypeName = Literal["float32", "bfloat16", "float16"]

#: dolma2 tokenizer ids (OLMO2.md §6; OLMo-2-1124-7B generation_config.json): EOS, PAD; no BOS.
DOLMA2_EOS_TOKEN_ID = 100_257
DOLMA2_PAD_TOKEN_ID = 100_277
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
_KEY_PATTERNS = tuple(
    tuple(re.compile(re.escape(t).replace(r"\{i\}", r"(\d+)")) for t in row) for row in WEIGHT_KEYS
)

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
    "block": "reordered_norm",
    "norm": "rms_norm",
    "mlp": "swiglu",
    "qk_norm": True,
    "clip_qkv": None,
}


def rename_key(key: str, *, to_hf: bool) -> Optional[str]:
    """Translate one state-dict key through WEIGHT_KEYS; None when no row matches."""
    src, dst = (0, 1) if to_hf else (1, 0)
    for patterns, row in zip(_KEY_PATTERNS, WEIGHT_KEYS):
        match = patterns[src].fullmatch(key)
        if match:
            return row[dst].replace("{i}", match.group(1)) if match.groups() else row[dst]
    return None


def as_dtype(dtype: DTypeLike) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not supported; use one of: {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------------------------- configs


def _check_hf_config(hf: dict) -> None:
    if hf.get("model_type") != "olmo2":
        raise ValueError(f"config.json model_type={hf.get('model_type')!r}: only 'olmo2' is supported")
    architectures = hf.get("architectures", ["Olmo2ForCausalLM"])
    if architectures != ["Olmo2ForCausalLM"]:
        raise ValueError(
            f"config.json architectures={architectures!r}: only ['Olmo2ForCausalLM'] is supported"
        )
    for key, (value, why) in FIXED_HF_VALUES.items():
        if hf.get(key, value) != value:
            raise ValueError(f"config.json {key}={hf[key]!r} is not supported: needs {value!r} ({why})")
    if hf.get("rope_scaling") is not None:
        raise ValueError(f"config.json rope_scaling={hf['rope_scaling']!r} is not supported: only plain RoPE")
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * hf.get("num_attention_heads", 0) != hf.get("hidden_size"):
        raise ValueError(
            f"config.json head_dim={head_dim} is not supported: needs hidden_size / num_attention_heads"
        )


def _rope_theta_from_hf(hf: dict) -> float:
    """v5 writes ``rope_parameters``, v4 ``rope_theta`` (LIGHTNING.md §7); accept either, or both if equal."""
    params = hf.get("rope_parameters") or {}
    for key, value in params.items():
        if key not in ("rope_type", "rope_theta") or (key == "rope_type" and value != "default"):
            raise ValueError(f"config.json rope_parameters.{key}={value!r} is not supported: only plain RoPE")
    thetas = {float(t) for t in (params.get("rope_theta"), hf.get("rope_theta")) if t is not None}
    if len(thetas) > 1:
        raise ValueError(
            f"config.json rope_theta={hf['rope_theta']} disagrees with "
            f"rope_parameters.rope_theta={params['rope_theta']}"
        )
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
        raise ValueError(
            f"config.json {VOCAB_HINT_KEY}.vocab_size={size} padded to a multiple of {multiple} "
            f"does not give vocab_size={rows}"
        )
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
    return ModelConfig(
        **fields,
        **OLMO2_COMPONENTS,
        vocab_size=vocab_size,
        vocab_pad_multiple=vocab_pad_multiple,
        rope_theta=_rope_theta_from_hf(hf),
    )


def check_hf_representable(cfg: ModelConfig) -> None:
    for name, value in OLMO2_COMPONENTS.items():
        if getattr(cfg, name) != value:
            raise ValueError(
                f"ModelConfig.{name}={getattr(cfg, name)!r} has no HF Olmo2 equivalent (needs {value!r})"
            )


def _check_token_ids(cfg: ModelConfig, ids: dict[str, Optional[int]]) -> None:
    for name, value in ids.items():
        if value is not None and not 0 <= value < cfg.vocab_size:
            raise ValueError(
                f"{name}={value} is outside the vocabulary (vocab_size={cfg.vocab_size}); "
                "pass your tokenizer's ids"
            )


def model_config_to_hf_config(
    cfg: ModelConfig,
    *,
    eos_token_id: int = DOLMA2_EOS_TOKEN_ID,
    pad_token_id: Optional[int] = DOLMA2_PAD_TOKEN_ID,
    bos_token_id: Optional[int] = None,
    dtype: DTypeLike = "bfloat16",
) -> dict:
    """The HF ``config.json`` dict for ``cfg``, readable by transformers v4 and v5.

    Args:
        cfg: an OLMo 2 model config (reordered-norm blocks, RMSNorm, SwiGLU, QK-norm, no clipping).
        eos_token_id: end-of-text id (dolma2: 100257).
        pad_token_id: padding id (dolma2: 100277).
        bos_token_id: beginning-of-text id (OLMo 2 uses none).
        dtype: dtype the weights are stored in, written as ``dtype`` (v5) and ``torch_dtype`` (v4).
    """
    check_hf_representable(cfg)
    _check_token_ids(
        cfg, {"eos_token_id": eos_token_id, "pad_token_id": pad_token_id, "bos_token_id": bos_token_id}
    )
    name = _dtype_name(as_dtype(dtype))
    hf = {"architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2"}
    hf.update({key: effective(cfg, ours) for ours, key, _ in CONFIG_FIELDS})
    hf.update({key: value for key, (value, _) in FIXED_HF_VALUES.items()})
    hf.update(
        vocab_size=cfg.padded_vocab_size,
        rope_theta=cfg.rope_theta,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        use_cache=True,
        dtype=name,
        torch_dtype=name,
    )
    hf[VOCAB_HINT_KEY] = {"vocab_size": cfg.vocab_size, "vocab_pad_multiple": cfg.vocab_pad_multiple}
    return hf


def effective(cfg: ModelConfig, field: str):
    """A field's value with None resolved (``n_kv_heads: None`` means ``n_heads``)."""
    return cfg.kv_heads if field == "n_kv_heads" else getattr(cfg, field)
