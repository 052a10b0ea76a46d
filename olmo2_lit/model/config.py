"""The one config that describes a transformer, with the OLMo 2 size presets.

Sizes, eps, RoPE theta and vocab come from ``shared/reference/OLMO2.md`` §1.4-1.5 (OLMo-core
``TransformerConfig.olmo2_*``, OLMo ``configs/official-*``, HF ``config.json`` of the released
checkpoints) and §6 (dolma2 tokenizer: 100,278 tokens padded to 100,352).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from olmo2_lit.model.registry import (
    AttentionName,
    BlockName,
    InitName,
    MLPName,
    NormName,
)

#: dolma2 tokenizer size and its padded embedding size (OLMO2.md §6).
DOLMA2_VOCAB_SIZE = 100_278

#: The published sizes, held here only (OLMO2.md §1.5: OLMo-core ``TransformerConfig.olmo2_*``, the
#: released HF ``config.json`` files); ``tiny`` is ours, for tests.
PRESET_SIZES: dict[str, dict[str, Optional[int]]] = {
    "olmo2_1b": dict(d_model=2048, n_layers=16, n_heads=16, n_kv_heads=None, mlp_hidden=8192),
    "olmo2_7b": dict(d_model=4096, n_layers=32, n_heads=32, n_kv_heads=None, mlp_hidden=11008),
    "olmo2_13b": dict(d_model=5120, n_layers=40, n_heads=40, n_kv_heads=None, mlp_hidden=13824),
    "olmo2_32b": dict(d_model=5120, n_layers=64, n_heads=40, n_kv_heads=8, mlp_hidden=27648),
    "tiny": dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=None, mlp_hidden=64),
}
PRESETS = tuple(PRESET_SIZES)
_SIZE_FIELDS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden")


@dataclass(kw_only=True)
class ModelConfig:
    """Shape and components of an OLMo-2-style decoder-only transformer.

    Sizes left unset come from ``preset`` (default OLMo 2 1B): in YAML, ``preset: olmo2_7b``; in Python,
    ``ModelConfig.olmo2_7b()`` ... or ``ModelConfig(preset="olmo2_7b")``.
    """

    # --- sizes ---
    preset: Optional[str] = None
    """Published size to start from: olmo2_1b | olmo2_7b | olmo2_13b | olmo2_32b | tiny (None: olmo2_1b).
    Size fields you set win. Resolved on construction (the stored config spells the sizes out)."""
    d_model: Optional[int] = None
    """Width of the residual stream (None: the preset's)."""
    n_layers: Optional[int] = None
    """Number of transformer blocks (None: the preset's)."""
    n_heads: Optional[int] = None
    """Number of query heads; must divide d_model (None: the preset's)."""
    n_kv_heads: Optional[int] = None
    """Number of key/value heads (GQA when fewer than n_heads); None: the preset's, else n_heads."""
    mlp_hidden: Optional[int] = None
    """Hidden width of the MLP (per gate/up projection for SwiGLU, like HF ``intermediate_size``)."""
    vocab_size: int = DOLMA2_VOCAB_SIZE
    """Tokenizer vocabulary size (linked from the datamodule by the CLI)."""
    vocab_pad_multiple: int = 128
    """The embedding and output rows are padded up to a multiple of this (100,278 -> 100,352)."""
    max_sequence_length: int = 4096
    """Longest sequence the RoPE cache is built for (grows on demand)."""

    # --- attention ---
    attention: AttentionName = "sdpa"
    """Attention backend: sdpa | flex | xformers | eager, or a dotted path to your own."""
    rope_theta: float = 500_000.0
    """RoPE base frequency."""
    qk_norm: bool = True
    """Normalize q and k over the full projected width before the head split (OLMo 2)."""
    clip_qkv: Optional[float] = None
    """Clamp q, k and v to [-clip_qkv, clip_qkv] (OLMo-0424 used 8.0; OLMo 2 uses none)."""

    # --- components ---
    block: BlockName = "reordered_norm"
    """Block layout: reordered_norm (OLMo 2) | pre_norm (Llama) | olmo0424, or a dotted path."""
    norm: NormName = "rms_norm"
    """Norm for blocks, QK-norm and the final norm: rms_norm | layer_norm | layer_norm_no_affine."""
    norm_eps: float = 1e-6
    """Epsilon of every norm."""
    mlp: MLPName = "swiglu"
    """Feed-forward: swiglu | gelu, or a dotted path."""

    # --- init ---
    init: InitName = "olmo2"
    """Initialization scheme: olmo2 (truncated normal 0.02 at +-3 sigma) | olmo0424_scaled."""
    init_std: float = 0.02
    """Base standard deviation of the init."""
    init_cutoff_factor: float = 3.0
    """Truncate the normal at +-init_cutoff_factor * std."""

    def __post_init__(self) -> None:
        self._resolve_preset()
        for name, value in (
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.kv_heads),
            ("mlp_hidden", self.mlp_hidden),
            ("vocab_size", self.vocab_size),
            ("vocab_pad_multiple", self.vocab_pad_multiple),
        ):
            if value <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {value}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"ModelConfig.n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.kv_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim = d_model / n_heads = {self.head_dim} must be even for RoPE")
        for field, name_type in (
            ("block", BlockName),
            ("attention", AttentionName),
            ("norm", NormName),
            ("mlp", MLPName),
            ("init", InitName),
        ):
            value = getattr(self, field)
            if isinstance(value, name_type):
                continue  # validated when the CLI parsed it
            try:
                setattr(self, field, name_type(value))
            except ValueError as err:
                raise ValueError(f"ModelConfig.{field}: {err}") from None

    def _resolve_preset(self) -> None:
        name = self.preset or "olmo2_1b"
        if name not in PRESET_SIZES:
            raise ValueError(f"ModelConfig.preset: unknown preset {name!r}; valid: {', '.join(PRESETS)}")
        for field, value in PRESET_SIZES[name].items():
            if getattr(self, field) is None:
                setattr(self, field, value)
        self.preset = None

    # --- derived ---
    @property
    def kv_heads(self) -> int:
        """Effective number of key/value heads (``n_kv_heads``, or ``n_heads`` when that is None)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    @property
    def padded_vocab_size(self) -> int:
        """vocab_size rounded up to vocab_pad_multiple (rows of the embedding and output layer)."""
        m = self.vocab_pad_multiple
        return -(-self.vocab_size // m) * m

    @classmethod
    def unresolved(cls) -> ModelConfig:
        """Every field at its default with the sizes still None (not yet taken from a preset).

        The CLI's default for ``model.config``, so that a YAML ``preset`` can still fill the sizes;
        :meth:`resolved` (or constructing a config) fills them.
        """
        config = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            setattr(config, f.name, f.default)
        return config

    def resolved(self) -> ModelConfig:
        """This config with its sizes filled from the preset (itself when they already are)."""
        return self if self.d_model is not None else dataclasses.replace(self)

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (re-validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-JSON form, used in checkpoints and the native weights format."""
        return {
            f.name: (str(v) if isinstance(v, str) else v)
            for f in dataclasses.fields(self)
            if f.name != "preset"  # resolved into the sizes on construction
            for v in [getattr(self, f.name)]
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    # --- presets (OLMO2.md §1.5) ---
    @classmethod
    def olmo2_1b(cls, **overrides) -> ModelConfig:
        """OLMo-2-0425-1B: 2048 wide, 16 layers, 16 heads, MLP 8192 (1.485B params)."""
        return cls(preset="olmo2_1b", **overrides)

    @classmethod
    def olmo2_7b(cls, **overrides) -> ModelConfig:
        """OLMo-2-1124-7B: 4096 wide, 32 layers, 32 heads, MLP 11008 (7.30B params)."""
        return cls(preset="olmo2_7b", **overrides)

    @classmethod
    def olmo2_13b(cls, **overrides) -> ModelConfig:
        """OLMo-2-1124-13B: 5120 wide, 40 layers, 40 heads, MLP 13824 (13.72B params)."""
        return cls(preset="olmo2_13b", **overrides)

    @classmethod
    def olmo2_32b(cls, **overrides) -> ModelConfig:
        """OLMo-2-0325-32B: 5120 wide, 64 layers, 40 heads, 8 KV heads (GQA), MLP 27648 (32.23B)."""
        return cls(preset="olmo2_32b", **overrides)

    @classmethod
    def tiny(cls, **overrides) -> ModelConfig:
        """2 layers, d_model 32, 4 heads, vocab 256: for tests. Same components as OLMo 2."""
        return cls(**{**dict(preset="tiny", vocab_size=256, max_sequence_length=64), **overrides})

    @classmethod
    def preset_config(cls, name: str, **overrides) -> ModelConfig:
        """A preset by name: olmo2_1b | olmo2_7b | olmo2_13b | olmo2_32b | tiny."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
        return getattr(cls, name)(**overrides)
