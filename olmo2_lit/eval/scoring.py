"""Ranked classification: score each choice by the summed log-prob of its continuation.

Follows ai2-olmo-eval's ``OEEvalTask.prep_examples`` and ``ICLMetric.update`` (OLMO2.md §7.1):

* context and continuation are tokenized separately (no special tokens; a BOS first if given);
* the query is ``context + continuation[:-1]``, **left-truncated** to the model's context length,
  so the continuation is always whole and the context loses its oldest tokens;
* the score is ``-cross_entropy(logits[ctx_len - 1 : ctx_len - 1 + cont_len], continuation, "sum")``
  over the full (padded) vocab, in fp32;
* for ``pmi_dc`` the same continuation is also scored after the domain-conditional prompt ``" "``.

Queries are sorted by length and right-padded per batch (causal attention makes the padding
invisible to earlier positions). A domain-conditional score is shared by the requests whose whole
continuation is the same (:attr:`Instance.dc_key`): two choices that differ only in their last token
have the same ``dc_query`` but not the same score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from olmo2_lit.eval.tasks import Task

DOMAIN_CONDITIONAL = " "


@dataclass(frozen=True)
class Instance:
    """A tokenized request: what to run and where its continuation's logits are."""

    doc_id: int
    cont_id: int
    label: int
    query: tuple[int, ...]
    ctx_len: int
    continuation: tuple[int, ...]
    dc_query: tuple[int, ...]
    dc_len: int
    cont_str_len: int
    cont_byte_len: int

    @property
    def dc_key(self) -> tuple[int, ...]:
        """What the domain-conditional score depends on: the prompt ``" "`` and the whole continuation
        (``dc_query`` lacks the continuation's last token, which is scored but not fed)."""
        return self.dc_query[: self.dc_len] + self.continuation


def tokenize_task(
    task: Task,
    tokenizer: Tokenizer,
    *,
    context_length: int,
    truncate: bool = True,
    bos_token_id: Optional[int] = None,
) -> list[Instance]:
    """Tokenize every request of ``task`` for a model with ``context_length`` positions.

    Raises:
        ValueError: with ``truncate=False``, a request longer than the context; always, a continuation
            longer than the context or an empty context (names task, doc, choice).
    """
    dc = tokenizer.encode(DOMAIN_CONDITIONAL, add_special_tokens=False).ids
    contexts: dict[str, list[int]] = {}
    out = []
    for r in task.requests:
        if r.context not in contexts:
            ctx = tokenizer.encode(r.context, add_special_tokens=False).ids
            if bos_token_id is not None and (not ctx or ctx[0] != bos_token_id):
                ctx = [bos_token_id, *ctx]
            contexts[r.context] = ctx
        ctx = contexts[r.context]
        cont = tokenizer.encode(r.continuation, add_special_tokens=False).ids
        if not cont:
            raise ValueError(
                f"{task.source}: doc {r.doc_id} choice {r.cont_id}: the continuation encodes to no tokens"
            )
        # No position would predict the continuation's first token (ai2-olmo-eval fails on both too).
        where = f"{task.source}: doc {r.doc_id} choice {r.cont_id}"
        if not ctx:
            raise ValueError(
                f"{where}: the context encodes to no tokens, so nothing predicts the continuation's first "
                "token; give the request a context (or set bos_token_id)"
            )
        if len(cont) > context_length:
            raise ValueError(
                f"{where}: the continuation has {len(cont)} tokens, so it cannot be scored in the model's "
                f"context of {context_length}; leave the request out or use a longer context"
            )
        query = ctx + cont[:-1]
        if len(query) > context_length:
            if not truncate:
                raise ValueError(
                    f"{task.source}: doc {r.doc_id} choice {r.cont_id} has {len(query)} tokens, longer than "
                    f"the model's context of {context_length}; shorten it or set truncate: true (drops the "
                    "oldest tokens)"
                )
            query = query[-context_length:]
        out.append(
            Instance(
                doc_id=r.doc_id,
                cont_id=r.cont_id,
                label=r.label,
                query=tuple(query),
                ctx_len=len(query) - len(cont) + 1,
                continuation=tuple(cont),
                dc_query=tuple(dc + cont[:-1]),
                dc_len=len(dc),
                cont_str_len=len(r.continuation),
                cont_byte_len=len(r.continuation.encode("utf-8")),
            )
        )
    return out


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def score_queries(
    model: torch.nn.Module,
    queries: Sequence[Sequence[int]],
    starts: Sequence[int],
    continuations: Sequence[Sequence[int]],
    batch: Sequence[int],
    *,
    pad_id: int = 0,
) -> list[float]:
    """Summed continuation log-probs for the queries at indices ``batch`` (one forward pass)."""
    device = next(model.parameters()).device
    longest = max(len(queries[i]) for i in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    for row, i in enumerate(batch):
        ids[row, : len(queries[i])] = torch.tensor(queries[i])
    logits = model(ids.to(device))  # (b, T, padded_vocab)
    scores = []
    for row, i in enumerate(batch):
        start, cont = starts[i] - 1, continuations[i]
        target = torch.tensor(cont, device=device)
        scores.append(
            float(-F.cross_entropy(logits[row, start : start + len(cont)].float(), target, reduction="sum"))
        )
    return scores


def score_instances(
    model: torch.nn.Module,
    instances: Sequence[Instance],
    *,
    batch_size: int = 16,
    with_domain_conditional: bool = True,
    batches: Optional[list[list[int]]] = None,
) -> tuple[dict[int, float], dict[tuple[int, ...], float]]:
    """(log-likelihood per instance index, domain-conditional log-likelihood per :attr:`Instance.dc_key`).

    Args:
        model: maps (B, T) ids to (B, T, V) logits.
        instances: from :func:`tokenize_task`.
        batch_size: queries per forward pass.
        with_domain_conditional: also score the continuations after ``" "`` (for pmi_dc).
        batches: score only these batches of instance indices (one rank's share); default all.
    """
    queries = [x.query for x in instances]
    batches = batches if batches is not None else length_batches([len(q) for q in queries], batch_size)
    starts = [x.ctx_len for x in instances]
    conts = [x.continuation for x in instances]
    ll: dict[int, float] = {}
    for b in batches:
        ll.update(zip(b, score_queries(model, queries, starts, conts, b)))
    dc: dict[tuple[int, ...], float] = {}
    if with_domain_conditional:
        mine = sorted({i for b in batches for i in b})
        distinct = {instances[i].dc_key: instances[i] for i in mine}
        keys = list(distinct)
        dq = [distinct[k].dc_query for k in keys]
        d_starts = [distinct[k].dc_len for k in keys]
        d_conts = [distinct[k].continuation for k in keys]
        for b in length_batches([len(q) for q in dq], batch_size):
            dc.update(zip((keys[i] for i in b), score_queries(model, dq, d_starts, d_conts, b)))
    return ll, dc
