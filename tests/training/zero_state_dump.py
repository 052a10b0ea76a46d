"""A test callback: DeepSpeed's own view of the ZeRO state at one step, gathered by DeepSpeed's API."""

import torch
from lightning.pytorch.callbacks import Callback


class DumpZeroState(Callback):
    """After optimizer step ``step``, every rank gathers each parameter's full fp32 master weight and Adam
    moments with ``deepspeed.utils.safe_get_full_fp32_param`` / ``safe_get_full_optimizer_state`` (collective
    under ZeRO-3), and rank 0 saves ``{name: {"param", "exp_avg", "exp_avg_sq"}}`` to ``out``.

    Args:
        step: the optimizer step after which to gather.
        out: the file rank 0 writes.
    """

    def __init__(self, *, step: int, out: str) -> None:
        self.step, self.out, self.done = step, out, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.done or trainer.global_step != self.step:
            return
        from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

        optimizer = trainer.strategy.deepspeed_engine.optimizer
        if hasattr(optimizer, "_hp_optimizer_states_linked"):
            # ZeRO-1/2 (DeepSpeed 0.18) links the parameters to Adam's state after the first param group's
            # first step, before the other groups have state, and never again: link them now that all have.
            optimizer._hp_optimizer_states_linked = False
            optimizer._lazy_init_hp_params_optimizer_state()
        state = {
            name: {
                "param": safe_get_full_fp32_param(p),
                "exp_avg": safe_get_full_optimizer_state(p, "exp_avg"),
                "exp_avg_sq": safe_get_full_optimizer_state(p, "exp_avg_sq"),
            }
            for name, p in trainer.strategy.deepspeed_engine.module.named_parameters()
        }
        if trainer.global_rank == 0:
            torch.save(state, self.out)
        self.done = True
