"""SLURM checks made while parsing, before any process group or data work starts.

Lightning's ``SLURMEnvironment`` (auto-detected when ``SLURM_NTASKS`` is set and the job is not named
``bash``/``interactive``) takes ranks from SLURM and requeues the job on ``SIGUSR1`` (LIGHTNING.md §3).
srun starts one process per task, so ``trainer.devices`` must equal ``--ntasks-per-node`` and
``trainer.num_nodes`` must equal ``--nodes``; otherwise ranks wait for peers that never come.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.fabric.plugins.environments import SLURMEnvironment


def check_slurm_layout(devices: Any, num_nodes: int) -> None:
    """Raise a one-line ``ValueError`` if ``trainer.devices``/``num_nodes`` disagree with the SLURM job."""
    if not SLURMEnvironment.detect():
        return
    per_node = os.environ.get("SLURM_NTASKS_PER_NODE")
    if per_node is None:
        raise ValueError(
            "SLURM job without --ntasks-per-node: set `#SBATCH --ntasks-per-node` equal to trainer.devices "
            "(experiments/slurm/*.sbatch)"
        )
    per_node = int(per_node.split("(")[0])  # SLURM may write e.g. "4(x2)"
    n_devices = len(devices) if isinstance(devices, (list, tuple)) else devices
    if str(n_devices) != str(per_node):
        raise ValueError(
            f"trainer.devices ({devices}) disagrees with SLURM's tasks per node ({per_node}, "
            "SLURM_NTASKS_PER_NODE): set both to the GPUs per node (--trainer.devices and "
            "#SBATCH --ntasks-per-node)"
        )
    nodes = os.environ.get("SLURM_NNODES")
    if nodes is not None and int(nodes) != int(num_nodes):
        raise ValueError(
            f"trainer.num_nodes ({num_nodes}) disagrees with SLURM's node count ({nodes}, SLURM_NNODES): "
            "set --trainer.num_nodes to #SBATCH --nodes"
        )
