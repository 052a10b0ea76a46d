"""Sampling from a trained model (no KV cache yet: fine for short samples and tests)."""

from __future__ import annotations

from typing import Optional

import torch

from olmo2_lit.model import Transformer


@torch.no_grad()
def sample(
    model: Transformer,
    prompt_ids: list[int],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_k: Optional[int] = 50,
    eos_id: Optional[int] = None,
    seed: int = 0,
) -> list[int]:
    """Continue ``prompt_ids``; greedy when ``temperature == 0``. Returns the new token ids only.

    Logits of padded vocab rows (ids >= ``config.vocab_size``) are never sampled.
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    out: list[int] = []
    window = model.config.max_sequence_length
    for _ in range(max_new_tokens):
        logits = model(ids[:, -window:])[0, -1, : model.config.vocab_size].float().cpu()
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = int(torch.multinomial(logits.softmax(-1), 1, generator=gen))
        if eos_id is not None and nxt == eos_id:
            break
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
    return out
