"""Text generation from a :class:`~olmo2_lit.model.Transformer`: KV-cache decoding of a batch of
prompts of different lengths, greedy or sampled (temperature, top-k, top-p).

The prompts are left-padded into one batch and prefilled in one forward pass; after that each step
feeds one token per row and reads every earlier key and value from a
:class:`~olmo2_lit.model.kv_cache.KVCache`. Greedy output equals transformers'
``Olmo2ForCausalLM.generate`` on the same weights (``tests/model/test_generate.py``).

A model whose block class does not accept a ``cache`` argument is decoded by recomputing the whole
prefix at each token, one prompt at a time (correct, slow).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Optional

import torch

from olmo2_lit.errors import ConfigError
from olmo2_lit.model.kv_cache import KVCache
from olmo2_lit.model.transformer import Transformer


def filter_logits(
    logits: torch.Tensor, *, temperature: float, top_k: Optional[int] = None, top_p: Optional[float] = None
) -> torch.Tensor:
    """Scale by ``1 / temperature``, then keep the ``top_k`` largest and the smallest set of tokens
    whose probability reaches ``top_p`` (in that order, as transformers' logits warpers do); the rest
    become -inf. At least one token always survives.

    Args:
        logits: (B, V) float logits.
        temperature: > 0.
        top_k: keep this many tokens (None or 0: all).
        top_p: nucleus mass in (0, 1] (None or 1: all).
    """
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        mass_before = probs.cumsum(-1) - probs  # probability of the tokens ranked above this one
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _check_args(model: Transformer, prompts: Sequence[Sequence[int]], temperature, top_k, top_p) -> None:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ConfigError("generate needs at least one prompt, and every prompt at least one token")
    context = model.config.max_sequence_length
    for i, p in enumerate(prompts):
        if len(p) > context:
            raise ConfigError(
                f"prompt {i} has {len(p)} tokens, longer than the model's context of {context} "
                "(model.config.max_sequence_length); shorten the prompt"
            )
    check_sampling(temperature, top_k, top_p)


def check_sampling(
    temperature: float, top_k: Optional[int], top_p: Optional[float], *, flag: str = ""
) -> None:
    """The sampling arguments; ``flag`` prefixes each name in the error (``--`` for the CLI's flags)."""
    if not temperature >= 0:
        raise ConfigError(f"{flag}temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 0:
        raise ConfigError(f"{flag}top_k must be >= 0 (0 or omitted: sample among all tokens), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"{flag}top_p must be in (0, 1] (omit it, or 1, for no nucleus cut), got {top_p}")


class _RowEnds:
    """Which rows of a batch have ended: at ``eos_id`` or at the last token of a stop sequence."""

    def __init__(self, batch: int, eos_id: Optional[int], stops: list[tuple[int, ...]]) -> None:
        self.eos_id, self.stops = eos_id, stops
        self.ended = [False] * batch
        self.tails: list[list[int]] = [[] for _ in range(batch)]  # each row's latest new tokens
        self.keep = max((len(s) for s in stops), default=0)

    def mask(self, tokens: list[int]) -> list[Optional[int]]:
        """The step's tokens, None for the rows that ended before it."""
        return [None if e else t for e, t in zip(self.ended, tokens)]

    def update(self, step: list[Optional[int]]) -> bool:
        """Record a yielded step; True once every row has ended."""
        for i, tok in enumerate(step):
            if tok is None:
                continue
            tail = self.tails[i]
            tail.append(tok)
            del tail[: -self.keep or len(tail)]
            if tok == self.eos_id or any(tuple(tail[-len(s) :]) == s for s in self.stops):
                self.ended[i] = True
        return all(self.ended)


@torch.no_grad()
def stream(
    model: Transformer,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    eos_id: Optional[int] = None,
    stop: Sequence[Sequence[int]] = (),
    seed: int = 0,
    use_cache: Optional[bool] = None,
) -> Iterator[list[Optional[int]]]:
    """Yield, at each step, the new token of every row (None for a row that already ended).

    A row ends at the step it produces ``eos_id`` or the last token of one of the ``stop`` sequences
    (that token is yielded; the row yields None from the next step on). Generation ends when every
    row has ended, after ``max_new_tokens`` steps, or when the longest row fills the model's context.

    Args:
        model: the transformer (put it in eval mode first).
        prompts: token ids per row; rows may differ in length.
        max_new_tokens: most tokens to generate per row.
        temperature: 0 = greedy (argmax); otherwise sample from softmax(logits / temperature).
        top_k: sample among the k most likely tokens only.
        top_p: sample from the smallest set of tokens with this much probability (nucleus).
        eos_id: token that ends a row.
        stop: token sequences that end a row once its new tokens end with one (the prompt does not
            count; matched on token ids).
        seed: seed of the sampling generator.
        use_cache: KV-cache decoding; None = whenever the block class supports it.

    Raises:
        ValueError: a prompt longer than the model's context, an empty prompt, an empty stop sequence
            or a bad sampling argument.
    """
    _check_args(model, prompts, temperature, top_k, top_p)
    stops = [tuple(s) for s in stop]
    if any(not s for s in stops):
        raise ValueError("every stop sequence needs at least one token")
    if use_cache is None:
        use_cache = model.supports_kv_cache
    device = model.embeddings.weight.device
    gen = torch.Generator(device=device).manual_seed(seed)
    vocab = model.config.vocab_size
    context = model.config.max_sequence_length
    B, longest = len(prompts), max(len(p) for p in prompts)
    steps = min(max_new_tokens, context - longest + 1)
    if steps <= 0:
        return

    def pick(logits: torch.Tensor) -> torch.Tensor:  # (B, padded_vocab) -> (B,)
        logits = logits[:, :vocab].float()  # padded vocab rows are never produced
        if temperature == 0:
            return logits.argmax(-1)
        probs = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p).softmax(-1)
        return torch.multinomial(probs, 1, generator=gen)[:, 0]

    if use_cache:
        cache = KVCache.for_model(model, batch_size=B, max_length=min(context, longest + steps - 1))
        ids = torch.zeros(B, longest, dtype=torch.long, device=device)
        valid = torch.zeros(B, longest, dtype=torch.bool, device=device)
        for i, p in enumerate(prompts):  # left padding
            ids[i, longest - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            valid[i, longest - len(p) :] = True
        logits = model(ids, cache=cache, valid=valid, last_only=True)[:, -1]
    else:
        rows = [torch.as_tensor(list(p), dtype=torch.long, device=device) for p in prompts]
        logits = torch.stack([model(r[None], last_only=True)[0, -1] for r in rows])
    ended = _RowEnds(B, eos_id, stops)
    for step in range(steps):
        nxt = pick(logits)
        out = ended.mask(nxt.tolist())
        yield out
        if ended.update(out):
            return
        if step == steps - 1:
            return
        if use_cache:
            logits = model(nxt[:, None], cache=cache, last_only=True)[:, -1]
        else:
            rows = [torch.cat([r, t[None]]) for r, t in zip(rows, nxt)]
            logits = torch.stack([model(r[None], last_only=True)[0, -1] for r in rows])


def generate(
    model: Transformer,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    eos_id: Optional[int] = None,
    stop: Sequence[Sequence[int]] = (),
    seed: int = 0,
    use_cache: Optional[bool] = None,
) -> list[list[int]]:
    """The new tokens of every row, without the prompt and without ``eos_id`` (a ``stop`` sequence
    that ended a row is kept).

    Same arguments as :func:`stream`, which yields the same tokens one step at a time.
    """
    rows: list[list[int]] = [[] for _ in prompts]
    for step in stream(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_id=eos_id,
        stop=stop,
        seed=seed,
        use_cache=use_cache,
    ):
        for row, tok in zip(rows, step):
            if tok is not None and tok != eos_id:
                row.append(tok)
    return rows


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
    """Continue one prompt; greedy when ``temperature == 0``. Returns the new token ids only."""
    return generate(
        model,
        [prompt_ids],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        eos_id=eos_id,
        seed=seed,
    )[0]
