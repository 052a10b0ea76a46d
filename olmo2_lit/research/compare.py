"""``olmo2-lit compare``: runs grouped by variant, as a table over seeds and as plots."""

from __future__ import annotations

import csv
import io
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import ConfigError, DataError
from olmo2_lit.research.arg_checks import check_out_dir, check_spike_rule
from olmo2_lit.research.runs import RunRef, discover
from olmo2_lit.research.scalars import NO_SCALARS, Series, read_scalars
from olmo2_lit.research.spike_counts import SpikeCounts, SpikeRules, count_spikes
from olmo2_lit.research.stats import Spread, spread
from olmo2_lit.train import metrics

DEFAULT_TAGS = (metrics.TRAIN_CE_LOSS, metrics.GRAD_NORM, metrics.VAL_CE_LOSS)
SPREAD_NOTE = (
    "Each cell: mean ± sample std (n - 1) over seeds [95% interval of the mean: Student t, n - 1 degrees "
    "of freedom]; n = seeds with a value."
)


@dataclass
class Loaded:
    """The runs read, by variant, on a common x axis (step or tokens)."""

    runs: list[RunRef]
    series: list[Series]  # per run: tag -> (x, values)
    tags: list[str]
    left_out: list[str]
    x: str

    def variants(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, run in enumerate(self.runs):
            out.setdefault(run.variant, []).append(i)
        return out


def compare(
    dirs: list[str],
    out: str = "compare",
    tags: Optional[list[str]] = None,
    at: Optional[list[int]] = None,
    x: Literal["step", "tokens"] = "step",
    plots: Optional[list[str]] = None,
    smoothing: float = 0.0,
    spike_window: int = 128,
    spike_sigma: float = 6.0,
    paper_window: int = 1000,
    paper_sigma: float = 7.0,
) -> None:
    """Compare runs (docs/research.md): chosen tags at chosen steps and at the end as mean ± std and a
    95% interval over seeds, spike counts under OLMo-core's rule and the paper's score, and plots.

    Writes ``<out>/compare.md``, ``compare.csv``, ``spikes.csv`` and ``<tag>.png`` (one line per
    variant, a band of ± std over seeds), and prints the markdown.

    Args:
        dirs: sweep directories, run directories (``.../<variant>/seed<k>``) or plain ``fit`` outputs.
        out: the output directory.
        tags: scalar tags of the table (default: train/ce_loss, optim/grad_norm, val/ce_loss).
        at: x positions of the table's columns (steps, or tokens with ``--x tokens``), besides the end.
        x: align runs by optimizer ``step`` or by ``tokens`` (throughput/tokens_seen).
        plots: tags to plot (default: the table's tags; ``[]``: no plots).
        smoothing: TensorBoard's smoothing weight for the plots, in [0, 1); 0 (default): none.
        spike_window: OLMo-core rule: previous values of the mean and std.
        spike_sigma: OLMo-core rule: standard deviations above the mean.
        paper_window: the paper's score: previous values of the rolling mean and std.
        paper_sigma: the paper's score: standard deviations above the mean.
    """
    if not 0 <= smoothing < 1:
        raise ConfigError(f"--smoothing must be in [0, 1) (TensorBoard's weight; 0: none), got {smoothing}")
    check_spike_rule("spike_window", spike_window, "spike_sigma", spike_sigma)
    check_spike_rule("paper_window", paper_window, "paper_sigma", paper_sigma)
    check_out_dir(Path(out))
    rules = SpikeRules(spike_window, spike_sigma, paper_window, paper_sigma)
    if plots != []:  # matplotlib imports on the other core while the data server reads the event files
        threading.Thread(target=_import_pyplot, daemon=True).start()
    loaded = load(dirs, tags=list(tags or DEFAULT_TAGS), x=x, requested=tags is not None)
    at = sorted(at or [])
    spikes = [_spikes(s, rules) for s in loaded.series]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(loaded, at)
    markdown = render_markdown(loaded, rows, spikes, rules)
    plot_tags = [
        t for t in (loaded.tags if plots is None else plots) if t in loaded.tags or t in _all_tags(loaded)
    ]
    if plot_tags:
        from olmo2_lit.research.plots import plot_runs

        images = plot_runs(loaded, plot_tags, out_dir, smoothing=smoothing)
        markdown += "\n" + "\n".join(f"![{tag}]({path.name})" for tag, path in images.items()) + "\n"
    _write(out_dir / "compare.md", markdown)
    _write(out_dir / "compare.csv", _csv(rows, loaded, spikes))
    _write(out_dir / "spikes.csv", _spikes_csv(loaded, spikes))
    print(markdown, end="")


def _import_pyplot() -> None:
    try:
        from olmo2_lit.research.plots import pyplot

        pyplot()
    except ImportError:  # said again, with how to install it, when a plot is drawn
        pass


def load(dirs: list[str], *, tags: list[str], x: str = "step", requested: bool = False) -> Loaded:
    """Read the runs under ``dirs``; keep ``tags`` that every run logged (the rest are named)."""
    runs = discover(dirs)
    series = read_scalars([r.path for r in runs])
    if not any(series):
        raise DataError(f"{', '.join(str(r.path) for r in runs)}: {NO_SCALARS}")
    for run, scalars in zip(runs, series):
        if not scalars:
            print(f"warning: {run.path}: {NO_SCALARS}; skipped", file=sys.stderr)
    runs, series = zip(*[(r, s) for r, s in zip(runs, series) if s])
    runs, series = list(runs), list(series)
    logged = [set(s) for s in series]
    shared = set.intersection(*logged)
    if x == "tokens":
        missing = [r.name for r, s in zip(runs, series) if metrics.TOKENS_SEEN not in s]
        if missing:
            raise ConfigError(
                f"--x tokens needs {metrics.TOKENS_SEEN}, which these runs did not log: {missing}"
            )
        series = [_on_tokens(s) for s in series]
    left_out = sorted(t for t in set.union(*logged) - shared if not t.startswith(("diag/", "epoch")))
    kept = [t for t in tags if t in shared]
    dropped = [t for t in tags if t not in shared and (requested or any(t in s for s in logged))]
    if requested and not kept:
        raise ConfigError(f"none of the tags {tags} was logged by every run; shared tags: {sorted(shared)}")
    return Loaded(runs, series, kept, sorted(set(left_out) | set(dropped)), x)


def _all_tags(loaded: Loaded) -> set[str]:
    return set.intersection(*(set(s) for s in loaded.series))


def _on_tokens(series: Series) -> Series:
    steps, tokens = series[metrics.TOKENS_SEEN]
    return {tag: (np.interp(s, steps, tokens), v) for tag, (s, v) in series.items()}


def value_at(xs: np.ndarray, values: np.ndarray, position: Optional[float]) -> Optional[float]:
    """The last value logged at or before ``position`` (None: the run has not got there; None
    position: the run's last value)."""
    if position is None:
        return float(values[-1]) if len(values) else None
    if not len(xs) or xs[-1] < position:
        return None
    i = int(np.searchsorted(xs, position, side="right")) - 1
    return float(values[i]) if i >= 0 else None


def table_rows(loaded: Loaded, at: list[int]) -> list[tuple[str, str, str, Spread]]:
    """(variant, tag, column, spread) for every tag at every position and at the end."""
    rows = []
    for variant, members in loaded.variants().items():
        for tag in loaded.tags:
            for position in [*at, None]:
                values = [value_at(*loaded.series[i][tag], position) for i in members]
                rows.append((variant, tag, "end" if position is None else str(position), spread(values)))
    return rows


def _spikes(series: Series, rules: SpikeRules) -> Optional[SpikeCounts]:
    if metrics.TRAIN_CE_LOSS not in series or metrics.GRAD_NORM not in series:
        return None
    return count_spikes(series[metrics.TRAIN_CE_LOSS], series[metrics.GRAD_NORM], rules)


def render_markdown(loaded: Loaded, rows, spikes: list[Optional[SpikeCounts]], rules: SpikeRules) -> str:
    """The table as markdown: one section per tag (variants x positions), then the spike counts."""
    variants = loaded.variants()
    lines = [f"# compare: {len(loaded.runs)} runs, {len(variants)} variants (x: {loaded.x})", "", SPREAD_NOTE]
    if loaded.left_out:
        lines += ["", f"Left out (not logged by every run): {', '.join(loaded.left_out)}."]
    columns = list(dict.fromkeys(col for _, _, col, _ in rows))
    for tag in loaded.tags:
        lines += [
            "",
            f"## {tag}",
            "",
            "| variant | " + " | ".join(_header(c, loaded.x) for c in columns) + " |",
        ]
        lines.append("|---" * (len(columns) + 1) + "|")
        for variant in variants:
            cells = {col: s for v, t, col, s in rows if v == variant and t == tag}
            lines.append(f"| {variant} | " + " | ".join(_cell(cells[c]) for c in columns) + " |")
    lines += ["", "## spikes", "", _spike_note(rules), ""]
    lines += ["| variant | OLMo-core: loss spikes | OLMo-core: grad-norm spikes | paper score: loss (%) "
              "| paper score: grad norm (%) |", "|---|---|---|---|---|"]  # fmt: skip
    for variant, members in variants.items():
        counts = [spikes[i] for i in members if spikes[i] is not None]
        cols = [
            spread([c.loss for c in counts]),
            spread([c.grad_norm for c in counts]),
            spread([None if c.paper_loss is None else 100 * c.paper_loss for c in counts]),
            spread([None if c.paper_grad_norm is None else 100 * c.paper_grad_norm for c in counts]),
        ]
        lines.append(f"| {variant} | " + " | ".join(_cell(s, 3) for s in cols) + " |")
    return "\n".join(lines) + "\n"


def _header(column: str, x: str) -> str:
    return "end" if column == "end" else f"{x} {int(column):,}"


def _cell(s: Spread, digits: int = 4) -> str:
    return s.text(digits) + (f" (n={s.n})" if s.n else "")


def _spike_note(rules: SpikeRules) -> str:
    return (
        f"OLMo-core's rule: a logged value above mean + {rules.sigma:g} std of the previous {rules.window} "
        f"(loss and grad norm apart). The paper's score: the share of values >= {rules.paper_sigma:g} std "
        f"above the mean of the previous {rules.paper_window}, over the values with a full window; '–' "
        "where no run had that many. Both run on the logged values (every step only with "
        "log_every_n_steps 1), with olmo2_lit/train/spikes.py."
    )


def _csv(rows, loaded: Loaded, spikes) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["variant", "tag", "at", "n", "mean", "std", "ci95_low", "ci95_high"])
    for variant, tag, col, s in rows:
        writer.writerow([variant, tag, col, s.n, _num(s.mean), _num(s.std), _num(s.low), _num(s.high)])
    for variant, members in loaded.variants().items():
        counts = [spikes[i] for i in members if spikes[i] is not None]
        for name, get in _SPIKE_FIELDS.items():
            s = spread([get(c) for c in counts])
            writer.writerow([variant, name, "run", s.n, _num(s.mean), _num(s.std), _num(s.low), _num(s.high)])
    return buf.getvalue()


_SPIKE_FIELDS = {
    "spikes/olmo_core_loss": lambda c: c.loss,
    "spikes/olmo_core_grad_norm": lambda c: c.grad_norm,
    "spikes/paper_score_loss": lambda c: c.paper_loss,
    "spikes/paper_score_grad_norm": lambda c: c.paper_grad_norm,
}


def _spikes_csv(loaded: Loaded, spikes) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["variant", "seed", "run_dir", "values", "olmo_core_loss", "olmo_core_grad_norm",
                     "olmo_core_steps", "paper_score_loss", "paper_score_grad_norm"])  # fmt: skip
    for run, c in zip(loaded.runs, spikes):
        if c is not None:
            steps = " ".join(map(str, c.steps))
            writer.writerow([run.variant, run.seed, run.path, c.values, c.loss, c.grad_norm, steps,
                             _num(c.paper_loss), _num(c.paper_grad_norm)])  # fmt: skip
    return buf.getvalue()


def _num(v: Optional[float]) -> str:
    return "" if v is None or v != v else repr(float(v))


def _write(path: Path, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)
