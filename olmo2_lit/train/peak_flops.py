"""Peak dense FLOP/s per device, for MFU. Unknown devices give None (MFU is then not logged)."""

from __future__ import annotations

from typing import Optional

import torch

# Dense (no sparsity) peaks. H100 SXM bf16 989 TFLOP/s as OLMo-core's speed monitor uses
# (OLMO2.md §5: 1979e12 x 0.5); the others from the vendors' datasheets.
_PEAKS_BF16 = {
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "b200": 2250e12,
    "l40s": 362e12,
    "a10g": 125e12,
}


def peak_flops_per_device(device: torch.device, precision: str) -> Optional[float]:
    """Peak FLOP/s of one device at the training precision, or None when unknown (e.g. CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).lower()
    for key, bf16 in _PEAKS_BF16.items():
        if key in name:
            # fp32 training runs its matmuls in TF32 at half the bf16 rate on these parts.
            return bf16 if "bf16" in precision or "16" in precision else bf16 / 2
    return None
