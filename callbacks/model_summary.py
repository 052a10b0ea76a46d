"""The model summary printed at the start of ``fit``: parameters in readable units, FLOPs per token."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)

from olmo2_lit import compat
from olmo2_lit.model import flops_per_token


class OLMo2ModelSummary(ModelSummary):
    """Lightning's layer table without its FLOPs column (which reads 0 unless an example input is set),
    followed by the parameter count in readable units and the training FLOPs per token computed from
    the model config at the run's sequence length (the count behind MFU).

    Args:
        max_depth: module depth of the table (1: embeddings, blocks, norm, head); 0 prints nothing.
    """

    def __init__(self, *, max_depth: int = 2) -> None:
        super().__init__(max_depth=max_depth)
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.max_depth or not trainer.is_global_zero:
            return
        summary = compat.model_summary(self, trainer, pl_module)
        columns = [col for col in compat.summary_columns(summary) if col[0] != "FLOPs"]
        print("\n" + _table(columns) + "\n" + self.footer(trainer, pl_module, summary))

    @staticmethod
    def footer(trainer: Trainer, pl_module: LightningModule, summary) -> str:
        """Totals: parameters, size, and FLOPs per token where the sequence length is known."""
        lines = [
            f"{get_human_readable_count(summary.trainable_parameters):>10}  trainable parameters",
            f"{get_human_readable_count(summary.total_parameters):>10}  total parameters",
            f"{get_formatted_model_size(summary.model_size):>10}  MB of parameters",
        ]
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(pl_module, "config"):
            seq = datamodule.batch_plan.sequence_length
            fpt = flops_per_token(pl_module.config, seq)
            lines.append(
                f"{get_human_readable_count(int(fpt)):>10}  training FLOPs per token at length {seq}"
            )
        return "\n".join(lines)


def _table(columns: list[tuple[str, list[str]]]) -> str:
    widths = [max([len(name)] + [len(str(v)) for v in values]) for name, values in columns]
    rows = [" | ".join(name.ljust(w) for (name, _), w in zip(columns, widths))]
    rows.append("-" * len(rows[0]))
    for i in range(len(columns[0][1]) if columns else 0):
        rows.append(" | ".join(str(values[i]).ljust(w) for (_, values), w in zip(columns, widths)))
    return "\n".join(rows)
