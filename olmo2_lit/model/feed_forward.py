"""Feed-forward sublayers: SwiGLU (OLMo 2) and GELU.

Each MLP describes itself to the rest of the library through two methods of :class:`FeedForward`:
``flops_per_token()`` (the MFU count) and ``output_projections()`` (the linears a scaled init
shrinks with depth). Nothing in the library looks at an MLP's class or parameter names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from olmo2_lit.model.config import ModelConfig
from olmo2_lit.model.flops import linear_flops
from olmo2_lit.model.registry import MLPS


class FeedForward(nn.Module):
    """Base of the MLPs: ``FeedForward(config=...)`` maps (B, T, d_model) to itself.

    A subclass of your own should implement :meth:`output_projections` (needed by scaled inits such
    as ``olmo0424_scaled``) and override :meth:`flops_per_token` if some of its matmuls are not
    ``nn.Linear`` layers applied once per token.
    """

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__()

    def flops_per_token(self) -> int:
        """Forward matmul FLOPs for one token: 2 per multiply-add (OLMO2.md §5).

        The default counts every ``nn.Linear`` inside the module as one matmul applied once per
        token: ``2 * in_features * out_features`` each (biases and activations are not counted).
        """
        return linear_flops(self)

    def output_projections(self) -> list[nn.Linear]:
        """The linears that write this sublayer's output back to the residual stream.

        Scaled inits (``olmo0424_scaled``) give these std ``1/sqrt(2 * fan_in * (layer + 1))`` and
        every other linear ``1/sqrt(fan_in)``. There is no safe default; implement it.
        """
        raise NotImplementedError(
            f"{type(self).__qualname__}.output_projections() is not implemented; a scaled init needs "
            "it: return the nn.Linear layer(s) that project back to d_model"
        )


MLPS.set_base(FeedForward)


@MLPS.register("swiglu")
class SwiGLU(FeedForward):
    """``w2(silu(w1 x) * w3 x)`` with no biases (OLMO2.md §1.4; HF gate/up/down = w1/w3/w2)."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__(config=config)
        self.w1 = nn.Linear(config.d_model, config.mlp_hidden, bias=False)
        self.w2 = nn.Linear(config.mlp_hidden, config.d_model, bias=False)
        self.w3 = nn.Linear(config.d_model, config.mlp_hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))

    def flops_per_token(self) -> int:
        """Three d_model x mlp_hidden matmuls (gate, up, down)."""
        return 2 * 3 * self.w1.in_features * self.w1.out_features

    def output_projections(self) -> list[nn.Linear]:
        """The down projection ``w2``."""
        return [self.w2]


@MLPS.register("gelu")
class GeluMLP(FeedForward):
    """``w2(gelu(w1 x))``: the classic two-matrix MLP, for ablations."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__(config=config)
        self.w1 = nn.Linear(config.d_model, config.mlp_hidden, bias=False)
        self.w2 = nn.Linear(config.mlp_hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))

    def flops_per_token(self) -> int:
        """Two d_model x mlp_hidden matmuls (up, down)."""
        return 2 * 2 * self.w1.in_features * self.w1.out_features

    def output_projections(self) -> list[nn.Linear]:
        """The down projection ``w2``."""
        return [self.w2]
