"""A sweep as one SLURM job array, built from one of ``experiments/slurm/*.sbatch``.

The template gives the ``#SBATCH`` resources and the environment lines (``export ...``); the array
replaces its job name, output and ``srun`` line: task ``i`` runs cell ``i`` of the pending runs with
``srun olmo2-lit fit <that cell's arguments>``, taking nodes and tasks per node from SLURM as the
templates do, and marks its run ``done`` or ``failed`` in ``<run>/sweep_run.json``. Each run resumes
from its ``last.ckpt`` (``--ckpt_path last``), so a requeued or resubmitted task continues.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from olmo2_lit.errors import ConfigError
from olmo2_lit.research.grid import Cell

_REPLACED = ("--job-name", "--output", "--array")


def array_script(template: Path, cells: list[Cell], out: Path) -> str:
    """The job array script: the template's resources and environment, one task per cell."""
    if not template.is_file():
        raise FileNotFoundError(f"sbatch template not found: {template} (see experiments/slurm/)")
    lines = template.read_text().splitlines()
    if not any(line.lstrip().startswith("srun ") for line in lines):
        raise ConfigError(f"{template}: no 'srun' line, so it is not a training template to build on")
    header = [
        line for line in lines if line.startswith("#SBATCH") and not line.split()[1].startswith(_REPLACED)
    ]
    body_start = next(i for i, line in enumerate(lines) if line.startswith("set -"))
    srun = next(i for i, line in enumerate(lines) if line.lstrip().startswith("srun "))
    environment = [line for line in lines[body_start + 1 : srun] if not re.match(r"^RUN_DIR=", line)]
    cases = []
    for i, cell in enumerate(cells):
        cases.append(f"  {i}) RUN_DIR={shlex.quote(str(cell.run_dir))}")
        cases.append(f"     ARGS=({shlex.join(cell.args)}) ;;")
    return "\n".join(
        [
            "#!/bin/bash",
            f"# olmo2-lit sweep: {len(cells)} runs as a job array, from {template}.",
            "# Task i runs cell i; each resumes from its own last.ckpt (docs/research.md).",
            f"#SBATCH --job-name=sweep-{out.resolve().name}",
            *header,
            f"#SBATCH --array=0-{len(cells) - 1}",
            f"#SBATCH --output={out / 'slurm'}/%x-%A_%a.out",
            "set -uo pipefail",
            *environment,
            'case "${SLURM_ARRAY_TASK_ID}" in',
            *cases,
            '  *) echo "no sweep cell for task ${SLURM_ARRAY_TASK_ID}" >&2; exit 2 ;;',
            "esac",
            'mkdir -p "${RUN_DIR}"',
            'srun olmo2-lit fit "${ARGS[@]}" \\',
            '  --trainer.num_nodes "${SLURM_NNODES}" --trainer.devices "${SLURM_NTASKS_PER_NODE}" "$@"',
            "rc=$?",
            'status=failed; [ "$rc" = 0 ] && status=done',
            'python -m olmo2_lit.research.manifest "${RUN_DIR}" "${status}" "$rc"',
            "exit $rc",
            "",
        ]
    )


def submit(script: Path) -> str:
    """``sbatch --parsable SCRIPT``; returns the job id it prints."""
    proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch {script} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]
