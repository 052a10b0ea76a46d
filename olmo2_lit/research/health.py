"""The judgements of ``olmo2-lit report``, from one run's logged scalars (tag names from
olmo2_lit/train/metrics.py): each section's lines, and plain verdict lines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from olmo2_lit.research.scalars import Series
from olmo2_lit.research.spike_counts import SpikeRules, count_spikes
from olmo2_lit.train import metrics as m

#: tokens/s below this share of the run's median is a stall
STALL_SHARE = 0.5
#: grad norm growing faster than this factor per 10k steps is a verdict
GROWTH_WARN = 1.5


@dataclass
class Health:
    last_step: int
    verdicts: list[str] = field(default_factory=list)
    loss_lines: list[str] = field(default_factory=list)
    spike_lines: list[str] = field(default_factory=list)
    optim_lines: list[str] = field(default_factory=list)
    throughput_lines: list[str] = field(default_factory=list)
    eval_lines: list[str] = field(default_factory=list)
    spike_steps: list[int] = field(default_factory=list)


def assess(series: Series, *, recent: int, rules: SpikeRules) -> Health:
    last = max((int(s[-1]) for s, _ in series.values() if len(s)), default=0)
    h = Health(last_step=last)
    _loss(series, h, recent)
    _spikes(series, h, recent, rules)
    _interventions(series, h)
    _optim(series, h)
    _throughput(series, h)
    _eval(series, h)
    return h


def _slope_per(steps: np.ndarray, values: np.ndarray, per: int) -> float:
    """Least-squares slope of ``values`` against ``steps``, per ``per`` steps."""
    if len(steps) < 3 or np.ptp(steps) == 0:
        return 0.0
    return float(np.polyfit(steps.astype(np.float64), values, 1)[0]) * per


def _tail(steps: np.ndarray, values: np.ndarray, share: float = 0.2):
    keep = steps >= steps[-1] - max(1, share * (steps[-1] - steps[0]))
    return steps[keep], values[keep]


def _loss(series: Series, h: Health, recent: int) -> None:
    if m.TRAIN_CE_LOSS not in series:
        h.loss_lines.append(f"{m.TRAIN_CE_LOSS} not logged")
        return
    steps, loss = series[m.TRAIN_CE_LOSS]
    finite = np.isfinite(loss)
    h.loss_lines.append(
        f"{m.TRAIN_CE_LOSS}: {loss[0]:.4g} at step {steps[0]:,}, lowest {np.nanmin(loss):.4g} at step "
        f"{steps[np.nanargmin(loss)]:,}, last {loss[-1]:.4g} at step {steps[-1]:,}"
    )
    if not finite.all():
        h.verdicts.append(
            f"{(~finite).sum()} non-finite loss values logged, first at step {steps[~finite][0]:,}"
        )
    ts, tv = _tail(steps[finite], loss[finite])
    per = 1000
    slope = _slope_per(ts, tv, per)
    spread = float(np.std(tv)) if len(tv) else 0.0
    trend = (
        "falling"
        if slope < -0.01 * abs(tv.mean())
        else ("rising" if slope > 0.01 * abs(tv.mean()) else "flat")
    )
    h.loss_lines.append(
        f"trend over the last 20% of steps ({ts[0]:,}-{ts[-1]:,}): {slope:+.3g} per {per:,} steps ({trend}); "
        f"std around it {spread:.3g}"
    )
    if trend == "rising":
        h.verdicts.append(f"loss rising: {slope:+.3g} per {per:,} steps over steps {ts[0]:,}-{ts[-1]:,}")


def _spikes(series: Series, h: Health, recent: int, rules: SpikeRules) -> None:
    if m.SPIKE in series:  # the run's own SpikeMonitor
        steps, flag = series[m.SPIKE]
        h.spike_steps = steps[flag > 0].tolist()
        source = "logged by SpikeMonitor (spike/is_spike)"
        loss_steps = (
            series[m.SPIKE_LOSS][0][series[m.SPIKE_LOSS][1] > 0].tolist() if m.SPIKE_LOSS in series else []
        )
    elif m.TRAIN_CE_LOSS in series and m.GRAD_NORM in series:
        counts = count_spikes(series[m.TRAIN_CE_LOSS], series[m.GRAD_NORM], rules)
        h.spike_steps = counts.steps
        source = f"OLMo-core's rule ({rules.sigma:g} std over {rules.window}) on the logged values"
        loss_steps = None
    else:
        h.spike_lines.append("no spike/ tags, and no loss and grad norm to judge")
        return
    shown = ", ".join(f"{s:,}" for s in h.spike_steps[:20]) + (" ..." if len(h.spike_steps) > 20 else "")
    h.spike_lines.append(f"{len(h.spike_steps)} spike steps, {source}" + (f": {shown}" if shown else ""))
    in_recent = [s for s in h.spike_steps if s > h.last_step - recent]
    if in_recent:
        kind = (
            ""
            if loss_steps is None
            else f" ({sum(s > h.last_step - recent for s in loss_steps)} in the loss)"
        )
        h.verdicts.append(
            f"{len(in_recent)} spikes in the last {recent:,} steps{kind}, last at step {in_recent[-1]:,}"
        )
    for tag, what in ((m.SPIKE_PAPER_SCORE_LOSS, "loss"), (m.SPIKE_PAPER_SCORE_GRAD_NORM, "grad norm")):
        if tag in series:
            h.spike_lines.append(f"paper's spike score of the {what}: {100 * series[tag][1][-1]:.3g}%")


def _interventions(series: Series, h: Health) -> None:
    for tag, what in (
        (m.STEP_SKIPPED, "skipped by SkipStepAdamW"),
        (m.NONFINITE_SKIPPED, "skipped as non-finite"),
    ):
        if tag in series:
            steps, flag = series[tag]
            hit = steps[flag > 0]
            h.spike_lines.append(
                f"{len(hit)} steps {what}"
                + (f", at {', '.join(f'{s:,}' for s in hit[:20])}" if len(hit) else "")
            )
            if len(hit):
                h.verdicts.append(f"{len(hit)} steps {what}, last at step {hit[-1]:,}")
    if m.LR_BACKOFF in series:
        steps, factor = series[m.LR_BACKOFF]
        starts = steps[(factor < 1) & np.concatenate([[True], factor[:-1] >= 1])]
        h.spike_lines.append(f"LR backoffs began at steps {', '.join(f'{s:,}' for s in starts) or 'none'}")
        if len(factor) and factor[-1] < 1:
            h.verdicts.append(
                f"LR backed off now: x{factor[-1]:.3g} of the schedule (since step {starts[-1]:,})"
            )
    if m.ROLLBACKS in series and series[m.ROLLBACKS][1][-1] > 0:
        n = int(series[m.ROLLBACKS][1][-1])
        h.spike_lines.append(f"{n} rollbacks (rollbacks.json in the run's root dir lists them)")
        h.verdicts.append(f"{n} rollbacks to an earlier checkpoint")


def _optim(series: Series, h: Health) -> None:
    if m.GRAD_NORM in series:
        steps, gn = series[m.GRAD_NORM]
        top = steps[np.nanargmax(gn)]
        summary = f"median {np.nanmedian(gn):.3g}, last {gn[-1]:.3g}, max {np.nanmax(gn):.3g} (step {top:,})"
        h.optim_lines.append(f"{m.GRAD_NORM}: {summary}")
        _growth(steps, gn, h)
    if m.LEARNING_RATE in series:
        steps, lr = series[m.LEARNING_RATE]
        peak = int(np.argmax(lr))
        phase = "warming up" if peak == len(lr) - 1 and len(lr) > 1 and lr[-1] > lr[0] else (
            "at its peak" if lr[-1] >= 0.999 * lr[peak] else "decaying")  # fmt: skip
        h.optim_lines.append(
            f"LR {lr[-1]:.3g} at step {steps[-1]:,}: {100 * lr[-1] / lr[peak]:.3g}% of the peak "
            f"{lr[peak]:.3g} (step {steps[peak]:,}), {phase}"
        )


def _growth(steps: np.ndarray, gn: np.ndarray, h: Health) -> None:
    """The grad norm's growth over the second half of the run (log-linear fit), per 10k steps when the
    run is that long, else over the half itself (a short run's rate is not extrapolated)."""
    keep = np.isfinite(gn) & (gn > 0) & (steps >= steps[0] + 0.5 * (steps[-1] - steps[0]))
    if keep.sum() < 3:
        return
    span = int(steps[keep][-1] - steps[keep][0])
    per = 10_000 if steps[-1] >= 10_000 else span
    growth = math.exp(_slope_per(steps[keep], np.log(gn[keep]), per))
    unit = "per 10k steps" if per == 10_000 else f"over steps {steps[keep][0]:,}-{steps[keep][-1]:,}"
    h.optim_lines.append(f"growth over the second half of the run: x{growth:.3g} {unit} (log-linear fit)")
    if growth > GROWTH_WARN:
        h.verdicts.append(f"grad norm growing x{growth:.2g} {unit}")


def _throughput(series: Series, h: Health) -> None:
    if m.TOKENS_PER_SEC in series:
        steps, tps = series[m.TOKENS_PER_SEC]
        median = float(np.median(tps))
        stalls = steps[tps < STALL_SHARE * median]
        h.throughput_lines.append(f"tokens/s: median {median:,.0f}, last {tps[-1]:,.0f}")
        if len(stalls):
            worst = steps[np.argmin(tps)]
            line = (
                f"{len(stalls)} stalls (tokens/s under {STALL_SHARE:.0%} of the median), worst at {worst:,}"
            )
            h.throughput_lines.append(line)
            h.verdicts.append(line)
    if m.MFU in series:
        steps, mfu = series[m.MFU]
        h.throughput_lines.append(f"MFU: median {100 * np.median(mfu):.3g}%, last {100 * mfu[-1]:.3g}%")
    if m.TOKENS_SEEN in series:
        h.throughput_lines.append(f"{series[m.TOKENS_SEEN][1][-1]:,.0f} tokens seen (logged)")


def _eval(series: Series, h: Health) -> None:
    for tag in sorted(series):
        if tag.startswith(("val/", "test/", "downstream/")) and len(series[tag][0]):
            steps, values = series[tag]
            first = f" (first {values[0]:.4g} at step {steps[0]:,})" if len(values) > 1 else ""
            h.eval_lines.append(f"{tag}: {values[-1]:.4g} at step {steps[-1]:,}{first}")
