"""A user's own MLP with 4 matmuls, defined outside the library and selected by dotted path
(``ModelConfig(mlp="my_mlps.FourMatrixMLP")``).

Its linears are named so that a library matching names (``w2`` = output, ``w_out`` = output) would
get both wrong: ``w2`` here is an *input* projection and the output projection is ``back``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from olmo2_lit.model import FeedForward


class FourMatrixMLP(FeedForward):
    """``back(mix(silu(w1 x) * w2 x))``: gate, up, a hidden-to-hidden mix, down. Relies on the base
    class's default ``flops_per_token`` (every ``nn.Linear`` once per token)."""

    def __init__(self, *, config):
        super().__init__(config=config)
        d, h = config.d_model, config.mlp_hidden
        self.w1 = nn.Linear(d, h, bias=False)
        self.w2 = nn.Linear(d, h, bias=False)
        self.mix = nn.Linear(h, h, bias=False)
        self.back = nn.Linear(h, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.mix(F.silu(self.w1(x)) * self.w2(x)))

    def output_projections(self) -> list[nn.Linear]:
        return [self.back]


class NoOutputsMLP(FourMatrixMLP):
    """Forgets to say which linear is its output projection."""

    def output_projections(self):
        return FeedForward.output_projections(self)
