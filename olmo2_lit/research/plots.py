"""PNG plots with matplotlib (the ``research`` extra), imported only when a plot is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from olmo2_lit.research.stats import smooth

if TYPE_CHECKING:
    from olmo2_lit.research.compare import Loaded


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or an error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "plots need matplotlib: pip install 'olmo2_lit[research]' (or pass --plots '[]')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def file_name(tag: str) -> str:
    return tag.replace("/", "_") + ".png"


def plot_runs(loaded: Loaded, tags: list[str], out: Path, *, smoothing: float = 0.0) -> dict[str, Path]:
    """One PNG per tag: per variant the mean over seeds, and a band of ± one std where n >= 2."""
    plt = pyplot()
    images = {}
    for tag in tags:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        for variant, members in loaded.variants().items():
            curves = [loaded.series[i][tag] for i in members if tag in loaded.series[i]]
            curves = [(x, smooth(v, smoothing)) for x, v in curves if len(x)]
            if not curves:
                continue
            grid, ys = _common_grid(curves)
            mean = ys.mean(axis=0)
            (line,) = ax.plot(*envelope_line(grid, mean), label=f"{variant} (n={len(curves)})", linewidth=1.2)
            if len(curves) > 1:
                std = ys.std(axis=0, ddof=1)
                x, lo, hi = envelope_band(grid, mean - std, mean + std)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        band = "mean ± std over seeds" + (f", smoothing {smoothing:g}" if smoothing else "")
        ax.set(title=f"{tag} ({band})", xlabel=loaded.x, ylabel=tag)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")  # "best" searches the data: seconds for long curves
        fig.tight_layout()
        images[tag] = out / file_name(tag)
        fig.savefig(images[tag])
        plt.close(fig)
    return images


#: buckets a long curve is drawn with: a few per pixel of the 7-inch, 100-dpi figure
MAX_BUCKETS = 1000


def _buckets(n: int) -> np.ndarray:
    return np.linspace(0, n, min(n, MAX_BUCKETS) + 1).astype(int)[:-1]


def envelope_line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A curve as drawn: at most ``MAX_BUCKETS`` runs of points, each kept as its lowest and highest
    point in x order, so every spike still shows at its height; short curves are returned as they are."""
    if len(x) <= 2 * MAX_BUCKETS:
        return x, y
    starts = _buckets(len(x))
    ends = np.append(starts[1:], len(x))
    lo = np.array([s + np.argmin(y[s:e]) for s, e in zip(starts, ends)])
    hi = np.array([s + np.argmax(y[s:e]) for s, e in zip(starts, ends)])
    keep = np.sort(np.stack([lo, hi], axis=1), axis=1).ravel()
    return x[keep], y[keep]


def envelope_band(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """A band as drawn: per run of points (``MAX_BUCKETS`` at most) its lowest ``lo`` and highest ``hi``,
    at the run's first x, so the band covers every point's band."""
    if len(x) <= 2 * MAX_BUCKETS:
        return x, lo, hi
    starts = _buckets(len(x))
    return x[starts], np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)


def _common_grid(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Every seed's curve on the union of their x values, over the range all of them cover."""
    lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    return grid, np.stack([np.interp(grid, x, v) for x, v in curves])


def plot_series(series: dict[str, tuple[np.ndarray, np.ndarray]], tag: str, path: Path, *, marks=()) -> Path:
    """One run's ``tag`` against step, with vertical lines at ``marks`` (e.g. spike steps)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    steps, values = series[tag]
    ax.plot(*envelope_line(steps, values), linewidth=1)
    for i, step in enumerate(marks):
        ax.axvline(step, color="red", alpha=0.4, linewidth=0.8, label="spike" if i == 0 else None)
    ax.set(title=tag, xlabel="step")
    ax.grid(alpha=0.3)
    if len(marks):
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
