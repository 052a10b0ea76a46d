"""Per-task metrics from per-choice log-likelihoods, as ai2-olmo-eval's ``ICLMetric`` computes them.

For each question (``doc_id``), with ``ll[c]`` the summed log-prob of choice ``c``:

* ``acc``: ``argmax_c ll[c]`` is the label;
* ``len_norm``: ``argmax_c ll[c] / len(choice_c)`` (characters, leading space included);
* ``pmi_dc``: ``argmax_c ll[c] / ll_dc[c]``, ``ll_dc`` the log-prob of the choice after ``" "``
  (a *ratio* of log-probs, as ai2-olmo-eval computes it);
* ``ce_loss``: ``-ll[label] / len(label choice)`` averaged over questions;
* ``bpb``: ``-ll[label] / (bytes of label choice) * log2(e)`` averaged over questions.

Arithmetic is fp32 and ties go to the first choice (``torch.argmax``), as there, so accuracies agree
exactly (``tests/eval/test_downstream.py`` checks against values recorded with ai2-olmo-eval).
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


def task_metrics(
    instances: Sequence[Instance], ll: Mapping[int, float], dc: Mapping[tuple[int, ...], float]
) -> dict[str, float]:
    """acc, len_norm, pmi_dc (when ``dc`` is given), ce_loss and bpb over the questions of one task."""
    by_doc: dict[int, list[int]] = defaultdict(list)
    for i, x in enumerate(instances):
        by_doc[x.doc_id].append(i)
    correct: dict[str, list[float]] = {m: [] for m in ACCURACY_METRICS}
    ce, bpb = [], []
    for doc_id in sorted(by_doc):
        rows = by_doc[doc_id]
        n = max(instances[i].cont_id for i in rows) + 1
        scores = {m: torch.full((n,), float("-inf")) for m in ACCURACY_METRICS}
        for i in rows:
            x = instances[i]
            s = _f32(ll[i])
            scores["acc"][x.cont_id] = s
            scores["len_norm"][x.cont_id] = s / x.cont_str_len
            if dc:
                scores["pmi_dc"][x.cont_id] = s / _f32(dc[x.dc_query])
        label = instances[rows[0]].label
        for m in ACCURACY_METRICS:
            correct[m].append(1.0 if int(torch.argmax(scores[m])) == label else 0.0)
        gold_index = next(i for i in rows if instances[i].cont_id == label)
        gold, gold_ll = instances[gold_index], _f32(ll[gold_index])
        ce.append(float(-gold_ll / gold.cont_str_len))
        bpb.append(float(-gold_ll / gold.cont_byte_len * LOG_2_OF_E))
    out = {m: sum(v) / len(v) for m, v in correct.items() if m != "pmi_dc" or dc}
    out["ce_loss"] = sum(ce) / len(ce)
    out["bpb"] = sum(bpb) / len(bpb)
    return out
