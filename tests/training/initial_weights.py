"""A callback for the initial-weights tests: the full weights as training starts, written by rank 0."""

import torch
from lightning.pytorch import Callback
from torch.distributed.tensor import DTensor


class SaveInitialWeights(Callback):
    """Before the first step, gather every parameter in full (FSDP2 shards are DTensors: a collective, so
    every rank takes part) and save ``{name: tensor}`` on the CPU to ``out`` from rank 0."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_start(self, trainer, pl_module) -> None:
        weights = {}
        for name, param in pl_module.model.state_dict().items():
            full = param.full_tensor() if isinstance(param, DTensor) else param
            weights[name] = full.detach().to("cpu", copy=True)
        if trainer.global_rank == 0:
            torch.save(weights, self.out)
