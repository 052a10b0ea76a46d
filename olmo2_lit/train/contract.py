"""What a callback may read from, and call on, the LightningModule: the module's side of the contract.

Callbacks receive the module as ``pl_module``; they use only the members of :class:`RunModule`
(``tests/test_contracts.py`` reads every callback's source to hold them to it). The datamodule's side is
``olmo2_lit.data.contract``.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import torch

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.step_record import StepRecord
from olmo2_lit.train.strategies import StrategyAdapter


@runtime_checkable
class RunModule(Protocol):
    """The members of ``OLMo2LitModule`` that callbacks may use."""

    config: ModelConfig
    """The resolved model config (sizes, components)."""
    model: Transformer
    """The plain-torch transformer being trained (wrapped blocks under activation checkpointing/FSDP2)."""
    last_step: Optional[StepRecord]
    """The record of the last finished optimizer step; step callbacks get each one in ``on_step``."""
    device: torch.device
    training: bool

    @property
    def adapter(self) -> StrategyAdapter:
        """What the strategy changes inside a step (loss scale, grad norm, clipping, dtypes), and what it
        allows (``grads_in_params``, ``refits_in_process``)."""
        ...

    def log(self, name: str, value: Any, **kwargs: Any) -> None:
        """Lightning's ``LightningModule.log``."""
        ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def finish_step(self) -> Optional[StepRecord]:
        """The finished step's record, once per optimizer step (for ``StepPublisher`` only)."""
        ...

    def use_token_bytes(self, table: torch.Tensor) -> None:
        """Log bits per byte on held-out data with this table of UTF-8 bytes per token id."""
        ...
