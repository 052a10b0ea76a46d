"""Render a run's stability scalars from its TensorBoard events to a PNG (the figure in docs/stability.md).

    python benchmarks/stability_figure.py RUN_LOG_DIR docs/img/stability_spike.png

Needs matplotlib (not a dependency of the library). Panels: CE loss, pre-clip grad norm (log scale) with
detected spikes marked, skipped steps and the LR-backoff multiplier, per-block gradient norms.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {tag: sorted(set(v)) for tag, v in out.items()}


def main(run: str, png: str) -> None:
    s = read_scalars(Path(run))
    xy = lambda tag: list(zip(*s[tag])) if tag in s else ([], [])  # noqa: E731
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(*xy("train/ce_loss"), lw=1)
    axes[0].set_ylabel("train/ce_loss")
    steps, norms = xy("optim/grad_norm")
    axes[1].semilogy(steps, norms, lw=1)
    spikes = [st for st, v in s.get("spike/is_spike", []) if v]
    norm_at = dict(s.get("optim/grad_norm", []))
    axes[1].scatter(spikes, [norm_at[st] for st in spikes], color="red", zorder=3, label="spike/is_spike")
    axes[1].set_ylabel("optim/grad_norm")
    axes[1].legend()
    axes[2].step(*xy("optim/step_skipped"), where="mid", label="optim/step_skipped")
    axes[2].step(*xy("optim/lr_backoff"), where="mid", label="optim/lr_backoff")
    axes[2].legend()
    for tag in sorted(t for t in s if t.startswith("diag/grad_norm/block")):
        axes[3].semilogy(*xy(tag), lw=1, label=tag.rsplit("/", 1)[1])
    axes[3].set_ylabel("diag/grad_norm")
    axes[3].legend(fontsize=7, ncol=2)
    axes[3].set_xlabel("optimizer step")
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)


if __name__ == "__main__":
    main(*sys.argv[1:3])
