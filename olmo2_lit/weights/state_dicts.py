"""State dicts between our names and HF's: expected shapes (built once per config), checks that name
the offending tensors, the renames both ways, and a model built from checked weights."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Optional

import torch

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.convert_hf import DTypeLike, StateDict, as_dtype, check_hf_representable, rename_key


def native_shapes(cfg: ModelConfig) -> dict[str, torch.Size]:
    """Our parameter names and shapes for ``cfg`` (built once per config, on the meta device)."""
    return dict(_shapes_of(json.dumps(cfg.to_dict(), sort_keys=True)))


@functools.lru_cache(maxsize=8)
def _shapes_of(config_json: str) -> tuple[tuple[str, torch.Size], ...]:
    with torch.device("meta"):
        model = Transformer(ModelConfig.from_dict(json.loads(config_json)), init_weights=False)
    return tuple((key, t.shape) for key, t in model.state_dict().items())


def _hf_shapes(cfg: ModelConfig) -> dict[str, torch.Size]:
    return {rename_key(key, to_hf=True): shape for key, shape in native_shapes(cfg).items()}


def key_listing(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" (and {len(keys) - 5} more)" if len(keys) > 5 else "")


def check_tensors(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]) -> None:
    """Raise ``ValueError`` naming every missing, unexpected or wrongly shaped tensor."""
    problems = []
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} expected {tuple(s)}, got {tuple(sd[k].shape)}"
        for k, s in expected.items()
        if k in sd and sd[k].shape != s
    ]
    if missing:
        problems.append(f"missing tensor(s): {key_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected tensor(s): {key_listing(unexpected)}")
    if wrong:
        problems.append(f"wrong shape(s): {key_listing(wrong)}")
    if problems:
        raise ValueError("; ".join(problems))


def hf_to_native(hf_sd: Mapping[str, torch.Tensor], cfg: ModelConfig) -> StateDict:
    """HF ``Olmo2ForCausalLM`` state dict -> ours. Errors name the HF key (and shapes)."""
    check_tensors(hf_sd, _hf_shapes(cfg))
    return {rename_key(key, to_hf=False): t for key, t in hf_sd.items()}


def native_to_hf(sd: Mapping[str, torch.Tensor], cfg: ModelConfig) -> StateDict:
    """Our state dict -> HF ``Olmo2ForCausalLM`` keys. Errors name our key (and shapes)."""
    check_hf_representable(cfg)
    check_tensors(sd, native_shapes(cfg))
    return {rename_key(key, to_hf=True): t for key, t in sd.items()}


def build_model(
    cfg: ModelConfig, sd: Mapping[str, torch.Tensor], *, dtype: Optional[DTypeLike] = None
) -> Transformer:
    """A :class:`Transformer` holding ``sd`` (our names), without allocating a second copy.

    Args:
        cfg: the model config; ``sd`` must match it exactly.
        sd: our state dict.
        dtype: cast the weights to this; None keeps the stored dtype.
    """
    check_tensors(sd, native_shapes(cfg))
    if dtype is not None:
        sd = {k: t.to(as_dtype(dtype)) for k, t in sd.items()}
    with torch.device("meta"):
        model = Transformer(cfg, init_weights=False)
    model.load_state_dict(sd, strict=True, assign=True)
    # Non-persistent buffers (the RoPE tables) are not in sd and are still on meta, which .to(device)
    # cannot copy. They start empty and are built on first use, so an empty real tensor restores them.
    for module in model.modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_meta:
                if buf.numel():
                    raise RuntimeError(
                        f"buffer {name} of {type(module).__name__} is built at construction; "
                        "build_model can only restore buffers that start empty"
                    )
                setattr(module, name, torch.empty(0, dtype=buf.dtype))
    return model
