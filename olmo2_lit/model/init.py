"""Weight initialization schemes, selected by ``ModelConfig.init``.

An init scheme is a class with ``__call__(model)``; register your own with ``@INITS.register``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from olmo2_lit.model.registry import INITS


def _trunc_normal_(weight: torch.Tensor, std: float, cutoff_factor: float) -> None:
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-cutoff_factor * std, b=cutoff_factor * std)


def _reset_norms(model: nn.Module) -> None:
    from olmo2_lit.model.norms import Norm

    for module in model.modules():
        if isinstance(module, Norm):
            module.reset_parameters()


class InitScheme:
    """Base class: ``scheme(model)`` initializes every parameter of a ``Transformer`` in place."""

    def __call__(self, model: nn.Module) -> None:
        raise NotImplementedError


INITS.set_base(InitScheme)


@INITS.register("olmo2")
class OLMo2Init(InitScheme):
    """OLMo 2: every weight (embedding, linear, output) from a normal with std ``init_std`` (0.02)
    truncated at +-``init_cutoff_factor`` sigma (3), no depth scaling; norm weights at 1.

    OLMO2.md §2.1 (OL ``init_fn: normal``; OC ``InitMethod.normal``).
    """

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        cfg = model.config
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                _trunc_normal_(module.weight, cfg.init_std, cfg.init_cutoff_factor)
        _reset_norms(model)


@INITS.register("olmo0424_scaled")
class OLMo0424ScaledInit(InitScheme):
    """OLMo-0424's "mitchell" init, for ablations (OLMO2.md §2.1): truncated normal with
    std 1/sqrt(fan_in) for embeddings and input projections, and 1/sqrt(2 * fan_in * (layer + 1))
    for each block's output projections, as the block reports them in
    :meth:`Block.output_projections` (attention ``w_out`` and MLP ``w2`` for the built-ins)."""

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        cfg = model.config
        _trunc_normal_(model.embeddings.weight, 1 / math.sqrt(cfg.d_model), cfg.init_cutoff_factor)
        _trunc_normal_(model.lm_head.weight, 1 / math.sqrt(cfg.d_model), cfg.init_cutoff_factor)
        for block in model.blocks:
            outputs = {id(m) for m in block.output_projections()}
            for module in block.modules():
                if not isinstance(module, nn.Linear):
                    continue
                fan_in = module.in_features
                if id(module) in outputs:
                    std = 1 / math.sqrt(2 * fan_in * (block.layer_idx + 1))
                else:
                    std = 1 / math.sqrt(fan_in)
                _trunc_normal_(module.weight, std, cfg.init_cutoff_factor)
        _reset_norms(model)
