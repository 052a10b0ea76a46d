"""``olmo2-lit sweep``: every (variant, seed) of a grid file as an ``olmo2-lit fit`` run."""

from __future__ import annotations

import contextlib
import copy
import io
import resource
import sys
from pathlib import Path
from typing import Any, Optional

import yaml

from olmo2_lit.errors import ConfigError
from olmo2_lit.research.arg_checks import check_out_dir
from olmo2_lit.research.grid import Cell, load_grid
from olmo2_lit.research.local import LocalRunner, default_threads
from olmo2_lit.research.manifest import Manifest, read_run_record

#: exit status of a sweep with a failed run, and of one stopped by a signal (128 + SIGTERM)
EXIT_FAILED, EXIT_STOPPED = 1, 143


def sweep(
    grid: str,
    out: str,
    seeds: Optional[list[int]] = None,
    parallel: int = 1,
    threads: Optional[int] = None,
    slurm: bool = False,
    template: str = "experiments/slurm/single_node.sbatch",
    dry_run: bool = False,
) -> None:
    """Run every (variant, seed) of a grid file, each in ``<out>/<variant>/seed<k>/`` (docs/research.md).

    Every run's config is resolved (``fit --print_config``) before any starts, so a missing fragment, an
    unknown override or a duplicate variant fails at once, naming it. A finished run is skipped, an
    interrupted or failed one resumes from its ``last.ckpt``; a failing run is reported and the others go
    on. ``<out>/sweep.json`` records the grid, each run's resolved config and its status.

    Args:
        grid: the grid YAML (base, seeds, overrides, variants; olmo2_lit/research/grid.py).
        out: the sweep's directory.
        seeds: replaces the grid's seeds.
        parallel: runs at once on this machine.
        threads: torch threads per run (OMP_NUM_THREADS); default: the cores divided among ``parallel``.
        slurm: submit one SLURM job array (``sbatch``) instead of running here.
        template: the sbatch file whose resources and environment the job array uses.
        dry_run: with ``slurm``, print the job array script instead of submitting it.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {parallel}")
    if threads is not None and threads < 1:
        raise ConfigError(
            f"--threads must be >= 1 (torch threads per run; omit it for cores / parallel), got {threads}"
        )
    check_out_dir(Path(out))
    spec = load_grid(grid, seeds=seeds)
    root = Path(out)
    cells = spec.cells(root)
    configs = resolve_configs(cells)
    runs = [_run_entry(cell, configs[cell.key]) for cell in cells]
    pending = [cell for cell, run in zip(cells, runs) if run["status"] != "done"]
    if slurm:
        _slurm(spec, root, cells, runs, pending, Path(template), dry_run)
        return
    manifest = Manifest(root, spec.to_dict(), runs)
    skipped = len(cells) - len(pending)
    threads = threads or default_threads(parallel)
    print(f"sweep: {len(cells)} runs, {skipped} already done, {len(pending)} to run, "
          f"{parallel} at once x {threads} threads -> {manifest.path}", flush=True)  # fmt: skip
    runner = LocalRunner(parallel=parallel, threads=threads, on_update=manifest.update)
    runner.run(pending, len(cells))
    counts = {
        s: sum(r["status"] == s for r in manifest.runs.values()) for s in ("done", "failed", "interrupted")
    }
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"sweep: {counts['done']}/{len(cells)} done, {counts['failed']} failed, "
          f"{counts['interrupted']} interrupted ({manifest.path}); the sweep's own CPU time "
          f"{own.ru_utime + own.ru_stime:.1f} s", flush=True)  # fmt: skip
    if runner.stopping:
        sys.exit(EXIT_STOPPED)
    if runner.failed:
        print("sweep: failed: " + ", ".join(runner.failed) + " (rerun the same command to retry them)")
        sys.exit(EXIT_FAILED)


def resolve_configs(cells: list[Cell]) -> dict[str, dict[str, Any]]:
    """Every cell's resolved config, parsing one seed per variant: the other seeds' configs differ only
    in the seed and the run's directories (``run_args``), which are set in a copy; a config whose shape
    does not allow that is parsed in full."""
    configs, first = {}, {}
    for cell in cells:
        if cell.variant not in first:
            first[cell.variant] = cell
            configs[cell.key] = resolve_config(cell)
            continue
        config = copy.deepcopy(configs[first[cell.variant].key])
        try:
            config["seed_everything"] = cell.seed
            config["trainer"]["default_root_dir"] = str(cell.run_dir)
            config["trainer"]["logger"]["init_args"]["save_dir"] = str(cell.run_dir)
            config["checkpoint"]["dirpath"] = str(cell.run_dir / "ckpt")
        except (KeyError, TypeError):
            config = resolve_config(cell)
        configs[cell.key] = config
    return configs


def resolve_config(cell: Cell) -> dict[str, Any]:
    """The full config ``fit`` would run for ``cell`` (``--print_config``, parsed in this process)."""
    from olmo2_lit.lightning_cli import OLMo2CLI

    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            OLMo2CLI(args=["fit", *cell.args, "--print_config"])
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            lines = stderr.getvalue().strip().splitlines()
            first = max((i for i, line in enumerate(lines) if line.startswith("error:")), default=0)
            why = " ".join(line.strip() for line in lines[first:])[:800].removeprefix("error:").strip()
            raise ConfigError(f"variant '{cell.variant}' (seed {cell.seed}): {why}") from None
    return yaml.safe_load(stdout.getvalue())


def _run_entry(cell: Cell, config: dict[str, Any]) -> dict[str, Any]:
    record = read_run_record(cell.run_dir) or {}
    status = record.get("status", "pending")
    if status == "done" and record.get("config") not in (None, config):
        raise ConfigError(
            f"{cell.run_dir} finished with another config than the grid now gives {cell.key}; "
            "move it away or sweep into another --out"
        )
    if status in ("running", "submitted"):  # a sweep that was killed outright, or a finished array task
        status = "interrupted"
    return {
        "key": cell.key,
        "variant": cell.variant,
        "seed": cell.seed,
        "dir": str(cell.run_dir),
        "command": ["olmo2-lit", "fit", *cell.args],
        "status": status,
        **{
            k: record[k] for k in ("returncode", "seconds", "started", "finished", "slurm_job") if k in record
        },
        "config": config,
    }


def _slurm(spec, root: Path, cells, runs, pending, template: Path, dry_run: bool) -> None:
    from olmo2_lit.research.slurm_array import array_script, submit

    if not pending:
        print(f"sweep: all {len(cells)} runs are done; nothing to submit")
        return
    script = array_script(template, pending, root)
    if dry_run:
        print(script, end="")
        return
    path = root / "slurm" / "sweep_array.sbatch"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    job = submit(path)
    manifest = Manifest(root, {**spec.to_dict(), "slurm_script": str(path)}, runs)
    for i, run in enumerate([r for r in runs if r["status"] != "done"]):  # the array's task order
        manifest.update(run["key"], status="submitted", slurm_job=f"{job}_{i}")
    print(f"sweep: submitted job array {job} ({len(pending)} tasks, {path})")
