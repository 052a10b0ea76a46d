"""Normalization layers: RMSNorm (OLMo 2) and LayerNorm with or without affine (OLMo-0424)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from olmo2_lit.model.registry import NORMS


class Norm(nn.Module):
    """Base of every norm: ``Norm(size, *, eps)`` normalizes over the last dimension."""

    def __init__(self, size: int, *, eps: float) -> None:
        super().__init__()
        self.size = size
        self.eps = eps

    def reset_parameters(self) -> None:
        """Back to the initial state (OLMO2.md §2.1: norm weights start at 1). A norm with
        parameters implements this; the default only serves norms without parameters."""
        if any(True for _ in self.parameters(recurse=False)):
            raise NotImplementedError(
                f"{type(self).__qualname__} has parameters but no reset_parameters(); implement it "
                "(weights to 1, biases to 0 for OLMo 2)"
            )


NORMS.set_base(Norm)


@NORMS.register("rms_norm")
class RMSNorm(Norm):
    """RMSNorm computed entirely in fp32, weight multiply included, then cast back.

    This is OLMo-core's ``RMSNorm`` (OLMO2.md §1.3): autocast off, ``x * rsqrt(mean(x^2) + eps)``
    times the weight in fp32. HF's ``Olmo2RMSNorm`` casts before the weight multiply; in fp32 the
    two are identical, in bf16 they differ by one rounding.
    """

    def __init__(self, size: int, *, eps: float) -> None:
        super().__init__(size, eps=eps)
        self.weight = nn.Parameter(torch.ones(size))

    def reset_parameters(self) -> None:
        """Weight to 1."""
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = x.float()
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
            return (h * self.weight.float()).to(x.dtype)


@NORMS.register("layer_norm")
class LayerNorm(Norm):
    """LayerNorm with a learnable weight and no bias (OLMo 2 has no biases anywhere), in fp32."""

    def __init__(self, size: int, *, eps: float) -> None:
        super().__init__(size, eps=eps)
        self.weight = nn.Parameter(torch.ones(size))

    def reset_parameters(self) -> None:
        """Weight to 1."""
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.layer_norm(x.float(), (self.size,), self.weight.float(), None, self.eps).to(x.dtype)


@NORMS.register("layer_norm_no_affine")
class NonParametricLayerNorm(Norm):
    """LayerNorm with no parameters at all, as in OLMo-0424 (OLMO2.md §3.2), in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.layer_norm(x.float(), (self.size,), None, None, self.eps).to(x.dtype)
