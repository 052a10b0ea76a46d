"""Per-task metrics from per-choice log-likelihoods, as ai2-olmo-eval's ``ICLMetric`` computes them.

For each question (``doc_id``), with ``ll[c]`` the summed log-prob of choice ``c``:

* ``acc``: ``argmax_c ll[c]`` is the label;
* ``len_norm``: ``argmax_c ll[c] / len(choice_c)`` (characters, leading space included);
* ``pmi_dc``: ``argmax_c ll[c] / ll_dc[c]``, ``ll_dc`` the log-prob of the choice after ``" "``
  (a *ratio* of log-probs, as ai2-olmo-eval computes it);
* ``ce_loss``: ``-ll[label] / len(label choice)`` averaged over questions;
* ``bpb``: ``-ll[label] / (bytes of label choice) * log2(e)`` averaged over questions.

Arithmetic is fp32 and ties go to the first choice (``torch.argmax``), as there, so accuracies agree
exactly (``tests/eval/test_downstream.py`` checks every request's three scores and the accuracies
against values recorded with ai2-olmo-eval's own ``ICLMetric``, dolma2 tokenizer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch

from olmo2_lit.eval.scoring import Instance

LOG_2_OF_E = 1.44269504089
ACCURACY_METRICS = ("acc", "len_norm", "pmi_dc")


def _f32(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def request_scores(
    instances: Sequence[Instance], ll: Mapping[int, float], dc: Mapping[tuple[int, ...], float]
) -> dict[str, list[float]]:
    """Each request's score, per accuracy metric, in the order of ``instances`` (fp32 arithmetic): what
    ``ICLMetric`` records per request in its ``loglikelihoods`` for that metric type. ``pmi_dc`` only
    when ``dc`` is given."""
    out: dict[str, list[float]] = {m: [] for m in ACCURACY_METRICS if m != "pmi_dc" or dc}
    for i, x in enumerate(instances):
        s = _f32(ll[i])
        out["acc"].append(float(s))
        out["len_norm"].append(float(s / x.cont_str_len))
        if dc:
            out["pmi_dc"].append(float(s / _f32(dc[x.dc_key])))
    return out


def task_metrics(
    instances: Sequence[Instance],
    ll: Mapping[int, float],
    dc: Mapping[tuple[int, ...], float],
    *,
    accuracies: bool = True,
) -> dict[str, float]:
    """acc, len_norm, pmi_dc (when ``dc`` is given), ce_loss and bpb over the questions of one task.

    Args:
        accuracies: False for a task that kept only each question's gold continuation
            (:attr:`olmo2_lit.eval.tasks.Task.gold_only`): only ce_loss and bpb, as ai2-olmo-eval's
            ``bpb`` metric type (a one-choice question would always be "right").
    """
    per_request = request_scores(instances, ll, dc) if accuracies else {}
    by_doc: dict[int, list[int]] = defaultdict(list)
    for i, x in enumerate(instances):
        by_doc[x.doc_id].append(i)
    correct: dict[str, list[float]] = {m: [] for m in per_request}
    ce, bpb = [], []
    for doc_id in sorted(by_doc):
        rows = by_doc[doc_id]
        n = max(instances[i].cont_id for i in rows) + 1
        label = instances[rows[0]].label
        for m, values in per_request.items():
            scores = torch.full((n,), float("-inf"))
            for i in rows:
                scores[instances[i].cont_id] = values[i]
            correct[m].append(1.0 if int(torch.argmax(scores)) == label else 0.0)
        gold_index = next(i for i in rows if instances[i].cont_id == label)
        gold, gold_ll = instances[gold_index], _f32(ll[gold_index])
        ce.append(float(-gold_ll / gold.cont_str_len))
        bpb.append(float(-gold_ll / gold.cont_byte_len * LOG_2_OF_E))
    out = {m: sum(v) / len(v) for m, v in correct.items()}
    out["ce_loss"] = sum(ce) / len(ce)
    out["bpb"] = sum(bpb) / len(bpb)
    return out
