"""Optimizer defaults and parameter groups of the OLMo 2 recipe."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from olmo2_lit.train.parallelize import parameter_name


class AdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` with OLMo 2's defaults (OLMO2.md §2.2): betas (0.9, 0.95), eps 1e-8,
    weight decay 0.1. Select it (or any torch optimizer) in YAML by ``class_path``.

    Args:
        params: parameters or parameter groups.
        lr: peak learning rate (OLMo 2 1B: 4e-4; 7B: 3e-4; 13B: 9e-4; 32B: 6e-4).
        betas: Adam betas.
        eps: Adam epsilon.
        weight_decay: decoupled weight decay (groups may override it).
        fused: use the fused kernel (CUDA); None lets torch decide.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 4e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        fused: Optional[bool] = None,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)


@dataclass(kw_only=True)
class ParamGroup:
    """Options for the parameters whose names match any of ``patterns`` (fnmatch globs).

    The first group that matches a parameter wins; unmatched parameters use the optimizer's defaults.
    """

    patterns: list[str] = field(default_factory=list)
    """Globs over parameter names, e.g. ``embeddings.weight`` or ``blocks.*.attention.*``."""
    weight_decay: Optional[float] = None
    """Weight decay for these parameters (None: the optimizer's)."""
    lr_scale: Optional[float] = None
    """Multiply the optimizer's LR by this for these parameters (None: 1)."""


def olmo2_param_groups() -> list[ParamGroup]:
    """OLMo 2: no weight decay on the embedding only; norms *are* decayed (OLMO2.md §2.2)."""
    return [ParamGroup(patterns=["embeddings.weight"], weight_decay=0.0)]


def build_param_groups(model: nn.Module, groups: list[ParamGroup]) -> list[dict]:
    """Split ``model``'s trainable parameters into torch optimizer groups.

    A group with ``lr_scale`` carries it as an extra key; call :func:`apply_lr_scales` once the
    optimizer exists (the optimizer's LR is only known then).

    Args:
        model: the transformer (names are relative to it).
        groups: overrides, first match wins.

    Raises:
        ValueError: a pattern that matches no parameter (a typo would silently do nothing).
    """
    named = [(parameter_name(n), p) for n, p in model.named_parameters() if p.requires_grad]
    buckets: list[list[nn.Parameter]] = [[] for _ in groups]
    rest: list[nn.Parameter] = []
    hits = [0] * len(groups)
    for name, param in named:
        for i, group in enumerate(groups):
            if any(fnmatch.fnmatchcase(name, pat) for pat in group.patterns):
                buckets[i].append(param)
                hits[i] += 1
                break
        else:
            rest.append(param)
    for group, n in zip(groups, hits):
        if n == 0:
            raise ValueError(f"param group patterns {group.patterns} match no parameter of the model")
    out = [{"params": rest, "name": "default"}] if rest else []
    for i, (group, params) in enumerate(zip(groups, buckets)):
        opts: dict = {"params": params, "name": f"group{i}"}
        if group.weight_decay is not None:
            opts["weight_decay"] = group.weight_decay
        if group.lr_scale is not None:
            opts["lr_scale"] = group.lr_scale
        out.append(opts)
    return out


def apply_lr_scales(optimizer: torch.optim.Optimizer) -> None:
    """Multiply each group's LR by its ``lr_scale`` (set by :func:`build_param_groups`)."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
