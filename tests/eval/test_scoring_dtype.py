"""Downstream scores of a bf16 model: the continuation's log-likelihood is the fp32 cross-entropy of its
bf16 logits (as ai2-olmo-eval upcasts them), not a cross-entropy computed in bf16."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from olmo2_lit.eval.scoring import score_queries


class FixedLogits(torch.nn.Module):
    """Returns the same bf16 logits for any input, as a bf16 model's forward would."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(logits, requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits[: ids.shape[0], : ids.shape[1]]


def test_bf16_logits_are_scored_in_fp32():
    gen = torch.Generator().manual_seed(0)
    logits = (8 * torch.randn(2, 6, 64, generator=gen)).bfloat16()
    queries, starts, conts = [[5, 9, 3, 7, 1, 2], [4, 4, 8, 6]], [3, 2], [[7, 1, 2], [8, 6]]
    scores = score_queries(FixedLogits(logits), queries, starts, conts, [0, 1])
    for row, (start, cont) in enumerate(zip(starts, conts)):
        window, target = logits[row, start - 1 : start - 1 + len(cont)], torch.tensor(cont)
        fp32 = float(-F.cross_entropy(window.float(), target, reduction="sum"))
        bf16 = float(-F.cross_entropy(window, target, reduction="sum"))
        assert scores[row] == fp32 and fp32 != bf16
