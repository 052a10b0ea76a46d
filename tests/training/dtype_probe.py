"""A test callback: the dtypes a training step really uses, written by rank 0 as JSON."""

import json

from lightning.pytorch import Callback


class RecordDtypes(Callback):
    """Records the dtype of a block's weight as its forward sees it and of that forward's output (the
    first step), and, before the first optimizer step, the dtypes of the parameters the optimizer updates
    and of their gradients; rank 0 writes ``{"compute", "activation", "params", "grads"}`` to ``out``.

    Args:
        out: the JSON file to write.
    """

    def __init__(self, out: str) -> None:
        self.out, self.seen, self.handle = out, {}, None

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(module, args, output):
            self.seen.setdefault("compute", str(module.weight.dtype))
            self.seen.setdefault("activation", str(output.dtype))

        self.handle = pl_module.model.blocks[0].feed_forward.w1.register_forward_hook(hook)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if "grads" in self.seen:
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.seen["params"] = sorted({str(p.dtype) for p in params})
        self.seen["grads"] = sorted({str(p.grad.dtype) for p in params if p.grad is not None})

    def on_train_end(self, trainer, pl_module) -> None:
        self.handle.remove()
        if trainer.global_rank == 0:
            with open(self.out, "w") as f:
                json.dump(self.seen, f)
