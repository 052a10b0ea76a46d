"""Model souping: a uniform or weighted average of checkpoints of one architecture.

OLMo 2 averaged ("souped") several annealing runs from different data orders into its final 7B, 13B
and 32B models (OLMO2.md §5; the paper's §4.3 "model souping"). ``olmo2-lit soup`` does that on any mix
of Lightning ``.ckpt`` files, native directories and HF OLMo 2 directories, and writes a native
directory (``model.safetensors`` + ``model_config.json``; ``olmo2-lit convert to-hf`` turns it into an
HF one). The average is accumulated in float64, one input in memory at a time besides the sum, and
rounded once to the output dtype, so a soup of two float32 checkpoints is exactly ``(a + b) / 2``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import save_file

from olmo2_lit.errors import ConfigError, WeightsError
from olmo2_lit.model import ModelConfig
from olmo2_lit.weights.convert_hf import DTypeName, StateDict, as_dtype
from olmo2_lit.weights.export import atomic_out_dir, check_out_dir, write_json
from olmo2_lit.weights.pretrained import HF_WEIGHTS, NATIVE_CONFIG, check_same_architecture, read_checkpoint


def check_same_tensors(reference: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor]) -> None:
    """Same tensor names and shapes, or a ValueError naming the first tensor (in ``reference``'s order)
    that is missing, extra or shaped differently."""
    for key, tensor in reference.items():
        if key not in other:
            raise ValueError(f"tensor {key!r} is missing")
        if other[key].shape != tensor.shape:
            raise ValueError(
                f"tensor {key!r} has shape {tuple(other[key].shape)}, expected {tuple(tensor.shape)}"
            )
    extra = [k for k in other if k not in reference]
    if extra:
        raise ValueError(f"tensor {extra[0]!r} is not in the first checkpoint")


def _normalized(weights: Optional[Sequence[float]], n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ConfigError(f"--weights has {len(weights)} values for {n} checkpoints; give one per checkpoint")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(
            f"--weights must be >= 0 with a positive sum, got {list(weights)}; give one"
            " such weight per checkpoint"
        )
    return [w / sum(weights) for w in weights]


def average_checkpoints(
    paths: Sequence[Union[str, Path]], *, weights: Optional[Sequence[float]] = None
) -> tuple[ModelConfig, StateDict, torch.dtype]:
    """(config of the first, float64 weighted mean of the state dicts, dtype of the first) of ``paths``.

    Raises:
        ValueError: fewer than two inputs, bad weights, or an input whose tensors or architecture
            differ from the first's (the message names the input and the first mismatching tensor).
    """
    if len(paths) < 2:
        raise ConfigError(
            f"soup needs at least two checkpoints, got {len(paths)}; pass two or more (soup A B --out DIR)"
        )
    coefficients = _normalized(weights, len(paths))
    first_cfg, total, first_dtype = None, None, None
    for path, coefficient in zip(paths, coefficients):
        cfg, sd = read_checkpoint(path)
        if total is None:
            first_cfg, first_dtype = cfg, next(iter(sd.values())).dtype
            total = {k: t.to(torch.float64) * coefficient for k, t in sd.items()}
            continue
        try:
            check_same_tensors(total, sd)
            check_same_architecture(first_cfg, cfg)
        except ValueError as err:
            raise WeightsError(
                f"{path} does not have the architecture of {paths[0]}: {err}; soup averages checkpoints of "
                "one model config only"
            ) from None
        for key, tensor in sd.items():
            total[key].add_(tensor.to(torch.float64), alpha=coefficient)
        del sd
    return first_cfg, total, first_dtype


def write_native(
    cfg: ModelConfig,
    sd: Mapping[str, torch.Tensor],
    out_dir: Path,
    *,
    dtype: torch.dtype,
    tokenizer_json: Optional[Path] = None,
) -> None:
    """Write a native directory atomically (``out_dir`` must be new or empty), with an optional
    tokenizer.json copied in."""
    tensors = {k: t.detach().to(device="cpu", dtype=dtype).contiguous() for k, t in sd.items()}
    with atomic_out_dir(out_dir) as tmp:
        write_json(tmp / NATIVE_CONFIG, cfg.to_dict())
        save_file(tensors, tmp / HF_WEIGHTS, metadata={"format": "pt"})
        if tokenizer_json is not None:
            shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")


def soup(
    checkpoints: list[str],
    *,
    out: str,
    weights: Optional[list[float]] = None,
    dtype: Optional[DTypeName] = None,
) -> None:
    """Average checkpoints of one architecture into a native weights directory (model souping).

    Args:
        checkpoints: two or more Lightning .ckpt files, native directories or HF OLMo 2 directories
            (mixed freely), all of the same architecture.
        out: directory to create (must not exist or be empty): model.safetensors + model_config.json,
            plus the first input directory's tokenizer.json if it has one.
        weights: one non-negative weight per checkpoint, normalized to sum to 1; default uniform.
        dtype: dtype of the written weights (float32, bfloat16, float16); default: the first input's.
    """
    out_dir = Path(out)
    check_out_dir(out_dir)
    cfg, total, first_dtype = average_checkpoints(checkpoints, weights=weights)
    tokenizer = Path(checkpoints[0]) / "tokenizer.json"
    write_native(
        cfg,
        total,
        out_dir,
        dtype=as_dtype(dtype) if dtype else first_dtype,
        tokenizer_json=tokenizer if tokenizer.is_file() else None,
    )
    print(
        f"soup: {len(checkpoints)} checkpoints, weights {_normalized(weights, len(checkpoints))} -> {out_dir}"
    )
