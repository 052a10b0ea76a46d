"""Feed-forward sublayers: SwiGLU (OLMo 2) and GELU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from olmo2_lit.model.config import ModelConfig
from olmo2_lit.model.registry import MLPS


class FeedForward(nn.Module):
    """Base of the MLPs: ``FeedForward(config=...)`` maps (B, T, d_model) to itself."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__()


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


@MLPS.register("gelu")
class GeluMLP(FeedForward):
    """``w2(gelu(w1 x))``: the classic two-matrix MLP, for ablations."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__(config=config)
        self.w1 = nn.Linear(config.d_model, config.mlp_hidden, bias=False)
        self.w2 = nn.Linear(config.mlp_hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))
