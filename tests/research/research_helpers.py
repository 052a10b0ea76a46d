"""Event files written with TensorBoard's writer (as Lightning's logger writes them), read back with
TensorBoard's EventAccumulator for hand computations, and a tiny ``fit`` base config for sweeps."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter


def write_events(run_dir: Path, scalars: dict[str, dict[int, float]]) -> None:
    """``tag -> {step: value}`` into one event file under ``run_dir``."""
    writer = SummaryWriter(str(run_dir))
    steps = sorted({s for values in scalars.values() for s in values})
    for step in steps:
        for tag, values in scalars.items():
            if step in values:
                writer.add_scalar(tag, values[step], step)
    writer.close()


def accumulator_scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of ``tag`` read with TensorBoard's EventAccumulator (every value kept)."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def tiny_base(path: Path, shards: Path, *, max_steps: int = 6) -> Path:
    """A tiny fit on CPU (2 layers, d_model 32, 64-token instances, batch 8 = 4 x 2), checkpoint every 3."""
    path.write_text(
        f"""trainer:
  accelerator: cpu
  devices: 1
  max_steps: {max_steps}
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
model:
  config: {{d_model: 32, n_layers: 2, n_heads: 4, mlp_hidden: 64}}
  schedule:
    class_path: olmo2_lit.train.schedules.CosineWithWarmup
    init_args: {{warmup: 2, t_max: 20}}
data:
  vocab_size: 256
  dtype: uint16
  sequence_length: 64
  global_batch_size: 8
  micro_batch_size: 4
  train_sources: [{{paths: ["{shards}"]}}]
checkpoint:
  every_n_train_steps: 3
"""
    )
    return path
