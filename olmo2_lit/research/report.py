"""``olmo2-lit report``: the health of one run, from its logged scalars and its newest checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import DataError
from olmo2_lit.research.arg_checks import check_at_least, check_out_dir, check_spike_rule
from olmo2_lit.research.health import Health, assess
from olmo2_lit.research.scalars import EVENTS, NO_SCALARS, has_events, read_scalars
from olmo2_lit.research.spike_counts import SpikeRules
from olmo2_lit.train import metrics

#: an event file written this recently means the run is still going
STILL_WRITING_S = 120


def report(
    run_dir: str,
    out: Optional[str] = None,
    recent: int = 1000,
    plots: bool = True,
    spike_window: int = 128,
    spike_sigma: float = 6.0,
) -> None:
    """A health report of one run (docs/research.md): loss trend, spikes and where, skipped steps, LR
    backoffs and rollbacks, grad-norm growth, place in the LR schedule, throughput and MFU with their
    stalls, data position, eval numbers, then plain verdict lines. Markdown (printed and written to
    ``<out>/report.md``) with PNG plots. A run still writing is read as far as it got, and says so.

    Args:
        run_dir: the run's directory (a sweep run, or a ``fit``'s ``default_root_dir`` / log dir).
        out: where report.md and the plots go (default: ``<run_dir>/report``).
        recent: the window, in steps, of "recent" verdicts (spikes in the last ``recent`` steps).
        plots: draw PNG plots (needs matplotlib).
        spike_window: OLMo-core rule on the logged values, when the run did not log spike/*.
        spike_sigma: likewise, standard deviations above the mean.
    """
    root = Path(run_dir)
    check_at_least("recent", recent, 1, "steps in the window of recent verdicts")
    check_spike_rule("spike_window", spike_window, "spike_sigma", spike_sigma)
    if out:
        check_out_dir(Path(out))
    if not root.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if not has_events(root):
        raise FileNotFoundError(f"{run_dir}: no TensorBoard event files (events.out.tfevents.*) to report on")
    (series,) = read_scalars([root])
    if not series:
        raise DataError(f"{run_dir}: {NO_SCALARS}")
    health = assess(series, recent=recent, rules=SpikeRules(window=spike_window, sigma=spike_sigma))
    status = _status(root, health.last_step)
    out_dir = Path(out) if out else root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render(root, health, status, _data_position(root))
    if plots:
        markdown += _plots(series, health, out_dir)
    with atomic_file(out_dir / "report.md", "w") as f:
        f.write(markdown)
    print(markdown, end="")


def _status(root: Path, last_step: int) -> str:
    newest = max(p.stat().st_mtime for p in root.rglob(EVENTS))
    age = time.time() - newest
    max_steps = _max_steps(root)
    of = f" of {max_steps:,}" if max_steps else ""
    if age < STILL_WRITING_S and (not max_steps or last_step + 1 < max_steps):
        return (
            f"**Still running** (event file written {age:.0f} s ago): this report reads what is logged so "
            f"far, up to step {last_step:,}{of}."
        )
    return f"Last logged step {last_step:,}{of}; event files last written {_ago(age)}."


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _max_steps(root: Path) -> Optional[int]:
    for path in sorted(root.rglob("config.yaml"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            steps = (yaml.safe_load(path.read_text()) or {}).get("trainer", {}).get("max_steps")
        except yaml.YAMLError:
            continue
        if isinstance(steps, int) and steps > 0:
            return steps
    return None


def _data_position(root: Path) -> Optional[str]:
    """Where the newest ``last.ckpt`` (a file; a sharded directory is not opened) left the data."""
    import torch

    ckpts = [p for p in root.rglob("last.ckpt") if p.is_file()]
    if not ckpts:
        return None
    path = max(ckpts, key=lambda p: p.stat().st_mtime)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # a checkpoint being replaced right now, or not ours
        return f"`{path}` could not be read ({type(err).__name__}); no data position."
    state = ckpt.get("TokenShardDataModule") or {}
    if not state:
        return f"`{path}` (step {ckpt.get('global_step', '?'):,}) holds no data position."
    return (
        f"`{path}`: step {ckpt.get('global_step', 0):,}, {state['total_tokens']:,} tokens trained on; "
        f"data epoch {state['epoch']}, {state['tokens']:,} tokens into it (seed {state.get('seed')})."
    )


def render(root: Path, h: Health, status: str, position: Optional[str]) -> str:
    """The report's markdown: status, verdicts, then the sections with their numbers."""
    lines = [f"# report: {root}", "", status, "", "## Verdict", ""]
    lines += [f"- {v}" for v in h.verdicts] or ["- nothing unusual in the logged scalars"]
    lines += ["", "## Loss", ""] + [f"- {line}" for line in h.loss_lines]
    lines += ["", "## Spikes and interventions", ""] + [f"- {line}" for line in h.spike_lines]
    lines += ["", "## Gradient norm and learning rate", ""] + [f"- {line}" for line in h.optim_lines]
    lines += ["", "## Throughput", ""] + [f"- {line}" for line in h.throughput_lines or ["not logged"]]
    lines += ["", "## Data position", "", f"- {position or 'no last.ckpt found under the run directory'}"]
    lines += ["", "## Evaluation", ""] + [
        f"- {line}" for line in h.eval_lines or ["no val/ or downstream/ scalars"]
    ]
    return "\n".join(lines) + "\n"


def _plots(series, h: Health, out_dir: Path) -> str:
    from olmo2_lit.research.plots import file_name, plot_series

    tags = [
        metrics.TRAIN_CE_LOSS,
        metrics.GRAD_NORM,
        metrics.LEARNING_RATE,
        metrics.TOKENS_PER_SEC,
        metrics.MFU,
    ]
    lines = ["", "## Plots", ""]
    for tag in tags:
        if tag in series and len(series[tag][0]):
            marks = h.spike_steps if tag in (metrics.TRAIN_CE_LOSS, metrics.GRAD_NORM) else ()
            path = plot_series(series, tag, out_dir / file_name(tag), marks=np.asarray(marks))
            lines.append(f"![{tag}]({path.name})")
    return "\n".join(lines) + "\n"
