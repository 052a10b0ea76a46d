"""float8 training of the blocks' linear layers through torchao, as OLMo-core and torchtitan do it.

``torchao.float8.convert_to_float8_training`` swaps each selected ``nn.Linear`` for torchao's
``Float8Linear`` (a subclass with the same parameters and state_dict keys): its three matmuls (output,
input gradient, weight gradient) cast their operands to float8 with dynamic scales and run float8 GEMMs,
while the stored weights, the optimizer and everything else keep their dtype. Only linear layers inside
``blocks`` are converted: the embeddings are a lookup, the norms are not matmuls, and the output
projection stays in higher precision (OLMo-core ignores ``lm_head.w_out``, ``Transformer.apply_fp8``;
our fused loss reads ``lm_head.weight`` directly). Called from :func:`olmo2_lit.train.parallelize`,
before activation checkpointing, compile and FSDP2 (torchtitan's order: converters first).

Needs ``pip install olmo2_lit[float8]`` (torchao) and a GPU with float8 tensor cores (compute capability
8.9: H100/H200, L4, L40S, RTX 4090, B200). ``emulate`` computes the same float8 casts with fp32 matmuls
instead, on any device: for testing the numerics on a CPU, never faster.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

import torch
from torch import nn

#: torchao's recipes (``Float8LinearRecipeName``): one scale per tensor (OLMo-core's and torchtitan's
#: default, fastest), one per row (more accurate, slower), or per row with the weight gradient in bf16.
Float8Recipe = Literal["tensorwise", "rowwise", "rowwise_with_gw_hp"]

MIN_CAPABILITY = (8, 9)


def check_float8_support(capability: Optional[tuple[int, int]]) -> None:
    """Raise unless a GPU of this compute capability (None: no CUDA GPU) has float8 matmuls.

    Raises:
        RuntimeError: one line naming the setting and what to do.
    """
    if capability is not None and capability >= MIN_CAPABILITY:
        return
    found = (
        "no CUDA GPU"
        if capability is None
        else f"a GPU of compute capability {capability[0]}.{capability[1]}"
    )
    raise RuntimeError(
        f"model.parallelize.float8 needs a GPU with float8 matmuls (compute capability >= 8.9: H100, L4, "
        f"...), found {found}; remove float8 (bf16 is the default), or set float8_emulate: true to test it"
    )


def cuda_capability() -> Optional[tuple[int, int]]:
    """The current CUDA device's compute capability, or None without one."""
    return torch.cuda.get_device_capability() if torch.cuda.is_available() else None


def convert_blocks_to_float8(model: nn.Module, recipe: Float8Recipe, *, emulate: bool = False) -> int:
    """Swap the linear layers inside ``model.blocks`` for torchao ``Float8Linear`` in place.

    Args:
        model: the transformer, before any wrapping (checkpointing, compile, FSDP2).
        recipe: torchao's scaling recipe.
        emulate: fp32 matmuls on float8-rounded operands (any device; for tests).

    Returns:
        The number of layers converted (a layer with a dimension not divisible by 16, which float8 GEMMs
        cannot take, stays as it is, as in OLMo-core's filter).
    """
    if not emulate:
        check_float8_support(cuda_capability())
    try:
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training
    except ImportError as err:
        raise ImportError("model.parallelize.float8 needs torchao: pip install 'olmo2_lit[float8]'") from err

    config = dataclasses.replace(Float8LinearConfig.from_recipe_name(recipe), emulate=emulate)
    converted = []

    def in_blocks(module: nn.Module, fqn: str) -> bool:
        take = fqn.startswith("blocks.") and all(d % 16 == 0 for d in module.weight.shape)
        converted.extend([fqn] if take else [])
        return take

    convert_to_float8_training(model, config=config, module_filter_fn=in_blocks)
    return len(converted)
