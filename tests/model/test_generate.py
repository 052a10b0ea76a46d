"""KV-cache generation against transformers' ``Olmo2ForCausalLM.generate`` and hand references."""

import pytest
import torch

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.model.generate import filter_logits, generate, stream
from olmo2_lit.weights import convert_hf as C
from olmo2_lit.weights import pretrained as P

transformers = pytest.importorskip("transformers")

CONFIGS = {
    "mha": ModelConfig.tiny(max_sequence_length=128),
    "gqa": ModelConfig.tiny(
        d_model=64,
        n_heads=4,
        n_kv_heads=2,
        n_layers=3,
        mlp_hidden=96,
        vocab_size=300,
        max_sequence_length=128,
    ),
}
PROMPT_LENGTHS = (5, 17, 1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Decoding runs many tiny ops: on the shared 2-core CI box a second OpenMP thread only spins."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomize_(model: torch.nn.Module, seed: int) -> None:
    """O(1) logits and norm weights away from 1, so greedy paths branch on real differences."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.2 * noise if "norm" in name else 0.1 * noise)


def _prompts(cfg: ModelConfig, lengths=PROMPT_LENGTHS) -> list[list[int]]:
    gen = torch.Generator().manual_seed(sum(lengths))
    return [torch.randint(2, cfg.vocab_size, (n,), generator=gen).tolist() for n in lengths]


@pytest.fixture(params=list(CONFIGS), scope="module")
def models(request, tmp_path_factory):
    """(ours, hf, cfg): transformers' model and ours converted from its saved directory."""
    cfg = CONFIGS[request.param]
    hf_config = transformers.Olmo2Config(
        **C.model_config_to_hf_config(cfg, eos_token_id=1, pad_token_id=0, dtype="float32")
    )
    hf = transformers.Olmo2ForCausalLM(hf_config).eval()
    _randomize_(hf, seed=0)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path)
    return P.import_hf(path).eval(), hf, cfg


def _hf_greedy(hf, cfg: ModelConfig, prompts: list[list[int]], n: int) -> list[list[int]]:
    """Left-padded batch through transformers' cached generate; padded vocab rows suppressed, as ours."""
    longest = max(map(len, prompts))
    ids = torch.zeros(len(prompts), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, longest - len(p) :], mask[i, longest - len(p) :] = torch.tensor(p), 1
    padded = list(range(cfg.vocab_size, cfg.padded_vocab_size)) or None
    out = hf.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=n,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        suppress_tokens=padded,
    )
    return out[:, longest:].tolist()


def test_greedy_matches_transformers_generate(models):
    """Guards the cache, per-row RoPE positions under left padding, the padding mask and GQA: any
    of them wrong changes the argmax within 64 tokens on these O(1)-logit random weights."""
    ours, hf, cfg = models
    prompts = _prompts(cfg)
    expected = _hf_greedy(hf, cfg, prompts, 64)
    got = generate(ours, prompts, max_new_tokens=64)
    assert [len(r) for r in got] == [64, 64, 64]
    assert got == expected
    assert len({tuple(r) for r in got}) == 3  # the rows really differ


def test_cache_equals_recomputing_the_prefix(models):
    """The cached and the recompute paths give identical greedy tokens, one prompt or a batch."""
    ours, _, cfg = models
    prompts = _prompts(cfg)
    assert generate(ours, prompts, max_new_tokens=32, use_cache=False) == generate(
        ours, prompts, max_new_tokens=32
    )
    assert generate(ours, prompts[1:2], max_new_tokens=32) == generate(ours, prompts, max_new_tokens=32)[1:2]


def test_eos_ends_each_row_at_its_first_eos(models):
    """A row stops at its own first eos (not included); other rows go on; reference: the no-eos run
    truncated by hand."""
    ours, _, cfg = models
    prompts = _prompts(cfg)
    free = generate(ours, prompts, max_new_tokens=40)
    eos = free[0][10]
    got = generate(ours, prompts, max_new_tokens=40, eos_id=eos)
    expected = [r[: r.index(eos)] if eos in r else r for r in free]
    assert got == expected
    assert len(got[0]) <= 10


def test_user_block_without_cache_falls_back_to_recompute():
    """A block whose forward(x, rope, doc_lens) takes no cache still generates: the output equals a
    hand-written argmax loop over full forwards."""
    cfg = ModelConfig.tiny(block="my_blocks.ParallelBlock")
    model = Transformer(cfg).eval()
    _randomize_(model, seed=3)
    assert not model.supports_kv_cache
    prompt = _prompts(cfg, (6,))[0]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.tensor([ids]))[0, -1, : cfg.vocab_size].argmax()))
    assert generate(model, [prompt], max_new_tokens=12) == [ids[len(prompt) :]]
    with pytest.raises(ValueError, match="ParallelBlock has no `cache`"):
        generate(model, [prompt], max_new_tokens=2, use_cache=True)


@pytest.mark.parametrize("top_k,top_p,temperature", [(5, None, 0.7), (None, 0.8, 1.3), (20, 0.5, 1.0)])
def test_filter_logits_matches_transformers_warpers(top_k, top_p, temperature):
    """Temperature, then top-k, then top-p keep exactly the tokens transformers' warpers keep."""
    from transformers.generation import logits_process as lp

    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(0)) * 3
    expected = lp.TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k:
        expected = lp.TopKLogitsWarper(top_k)(None, expected)
    if top_p:
        expected = lp.TopPLogitsWarper(top_p)(None, expected)
    got = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    assert torch.equal(got.isinf(), expected.isinf())
    assert 0 < int((~got.isinf()).sum(-1).min()) < 300
    torch.testing.assert_close(got[~got.isinf()], expected[~expected.isinf()])


def test_sampling_is_seeded_and_top_k_1_is_greedy(models):
    """Sampling depends on the seed only; top_k=1 or a tiny top_p leaves only the argmax."""
    ours, _, cfg = models
    prompts = _prompts(cfg)
    greedy = generate(ours, prompts, max_new_tokens=16)
    a = generate(ours, prompts, max_new_tokens=16, temperature=1.0, seed=1)
    assert a == generate(ours, prompts, max_new_tokens=16, temperature=1.0, seed=1)
    assert a != generate(ours, prompts, max_new_tokens=16, temperature=1.0, seed=2)
    assert a != greedy
    assert generate(ours, prompts, max_new_tokens=16, temperature=1.0, top_k=1, seed=1) == greedy
    assert generate(ours, prompts, max_new_tokens=16, temperature=1.0, top_p=1e-6, seed=1) == greedy


def test_generation_stops_at_the_context_and_rejects_longer_prompts(models):
    """The cache never grows past the context: a 125-token prompt in a 128-token context gets 4 new
    tokens (the last needs no slot); a 129-token prompt is an error naming the prompt."""
    ours, _, cfg = models
    long = _prompts(cfg, (125,))[0]
    assert len(generate(ours, [long, [5]], max_new_tokens=64)[0]) == 4
    with pytest.raises(ValueError, match="prompt 1 has 129 tokens, longer than the model's context of 128"):
        generate(ours, [[5], long + [1, 2, 3, 4]], max_new_tokens=4)
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(ours, [[5]], top_p=0.0, temperature=1.0)


# --- rows of one batch that end at different steps -------------------------------------------------

SUCCESSOR_EOS = 31


def _successor_model(max_sequence_length: int = 64) -> Transformer:
    """A real Transformer whose greedy next token is ``last token + 1`` (31 stays 31), set by hand:
    one-hot embeddings, attention and MLP outputs zeroed (so each block adds 0 to the residual), and
    an lm_head that maps token t's direction to t + 1. Every row's tokens are then known in advance."""
    cfg = ModelConfig.tiny(vocab_size=32, d_model=32, max_sequence_length=max_sequence_length)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "norm" in name else 0.0)
        for t in range(32):
            model.embeddings.weight[t, t] = 1.0
            model.lm_head.weight[min(t + 1, SUCCESSOR_EOS), t] = 1.0
    return model


def _count_forwards(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("use_cache", [True, False])
def test_stream_rows_end_at_eos_at_different_steps(use_cache):
    """Rows whose last prompt tokens are 28, 20 and 25 reach eos (31) after 3, 11 and 6 tokens: each
    yields its tokens up to and including eos, then None; the stream ends at the step the last row
    ends (11 steps and 11 forward passes, not max_new_tokens = 40)."""
    model = _successor_model()
    calls = _count_forwards(model)
    prompts = [[5, 28], [3, 9, 2, 20], [25]]
    steps = list(stream(model, prompts, max_new_tokens=40, eos_id=SUCCESSOR_EOS, use_cache=use_cache))
    ends = {0: 3, 1: 11, 2: 6}
    expected = [
        [last + s if s <= ends[i] else None for i, last in enumerate((28, 20, 25))] for s in range(1, 12)
    ]
    assert steps == expected
    assert calls[0] == (11 if use_cache else 11 * 3)  # recompute: one pass per row per step
    got = generate(model, prompts, max_new_tokens=40, eos_id=SUCCESSOR_EOS, use_cache=use_cache)
    assert got == [[29, 30], list(range(21, 31)), list(range(26, 31))]


@pytest.mark.parametrize("use_cache", [True, False])
def test_stream_rows_end_at_max_tokens_stop_sequences_and_eos(use_cache):
    """One batch, three ways to end: row 0 by the stop sequence [12, 13] (after 3 tokens, kept by
    generate), row 1 by eos (after 2), row 2 by max_new_tokens (5). A stop sequence that begins in the
    prompt ([29, 30]: row 1's prompt ends with 29) or is only partly produced ([16, 99]) ends nothing."""
    model = _successor_model()
    prompts = [[10], [7, 29], [3, 15]]
    stop = [[29, 30], [16, 99], [12, 13]]
    steps = list(
        stream(model, prompts, max_new_tokens=5, eos_id=SUCCESSOR_EOS, stop=stop, use_cache=use_cache)
    )
    assert steps == [
        [11, 30, 16],
        [12, 31, 17],
        [13, None, 18],
        [None, None, 19],
        [None, None, 20],
    ]
    got = generate(model, prompts, max_new_tokens=5, eos_id=SUCCESSOR_EOS, stop=stop, use_cache=use_cache)
    assert got == [[11, 12, 13], [30], [16, 17, 18, 19, 20]]
    # All rows ended by stop sequences at steps 1 and 2: two steps, not five.
    assert list(
        stream(model, [[10], [20]], max_new_tokens=5, stop=[[11], [21, 22]], use_cache=use_cache)
    ) == [
        [11, 21],
        [None, 22],
    ]
    with pytest.raises(ValueError, match="every stop sequence needs at least one token"):
        generate(model, prompts, stop=[[]])


def test_each_row_of_a_batch_ends_as_it_would_alone(models):
    """Random weights, three prompts: with an eos and a stop sequence taken from the rows' own free
    generations (so rows end at different steps, or not at all), each batched row equals that prompt
    generated alone, and equals its free generation cut by hand at the first eos (dropped) or the
    first completed stop sequence (kept)."""
    ours, _, cfg = models
    prompts = _prompts(cfg)
    free = generate(ours, prompts, max_new_tokens=24)
    eos, stop = free[0][6], free[1][3:5]
    alone = [generate(ours, [p], max_new_tokens=24, eos_id=eos, stop=[stop])[0] for p in prompts]
    batched = generate(ours, prompts, max_new_tokens=24, eos_id=eos, stop=[stop])
    assert batched == alone

    def cut(row):
        for n in range(1, len(row) + 1):
            if row[n - 1] == eos:
                return row[: n - 1]
            if row[:n][-len(stop) :] == stop:
                return row[:n]
        return row

    assert batched == [cut(r) for r in free]
    assert len({len(r) for r in batched}) > 1  # the rows really end at different steps


@pytest.mark.parametrize("top_p", [0.25, 0.5, 0.75, 0.3, 0.6])
def test_top_p_at_the_exact_mass_of_the_tokens_above_keeps_what_transformers_keeps(top_p):
    """Four equal logits: every probability is exactly 0.25, so the mass of the tokens ranked above a
    token is exactly 0, 0.25, 0.5 or 0.75. At top_p equal to that mass the token is dropped (the smallest
    set reaching p), as transformers' TopPLogitsWarper drops it; just above, it is kept."""
    from transformers.generation import logits_process as lp

    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, -1e9]])
    kept = int((~filter_logits(logits, temperature=1.0, top_p=top_p).isinf()).sum())
    expected = lp.TopPLogitsWarper(top_p)(None, logits.clone())
    assert kept == int((~expected.isinf()).sum())
    assert kept == {0.25: 1, 0.5: 2, 0.75: 3, 0.3: 2, 0.6: 3}[top_p]  # ceil(p / 0.25)


def test_a_prompt_exactly_the_context_long_gets_one_token():
    """A prompt of max_sequence_length tokens fits (its next token needs no cache slot): one token; one
    more token is refused. The successor model makes that token known: the prompt's last + 1."""
    model = _successor_model(max_sequence_length=16)
    prompt = list(range(16))
    for use_cache in (True, False):
        assert generate(model, [prompt], max_new_tokens=8, use_cache=use_cache) == [[16]]
        with pytest.raises(ValueError, match="prompt 0 has 17 tokens, longer than the model's context of 16"):
            generate(model, [[0, *prompt]], max_new_tokens=8, use_cache=use_cache)
    assert generate(model, [prompt[1:]], max_new_tokens=8) == [[16, 17]]  # one shorter: two tokens


@pytest.mark.parametrize("top_k", [32, 33, 1000])
def test_top_k_at_or_above_the_vocab_keeps_every_token(top_k):
    """top_k >= the vocab size means "all tokens" (transformers' TopKLogitsWarper clamps k the same way),
    not an error: filter_logits only scales by the temperature, and sampling gives, seed for seed, the
    tokens of sampling without top_k (on a 32-token vocab)."""
    logits = torch.randn(3, 32, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(filter_logits(logits, temperature=0.5, top_k=top_k), logits / 0.5)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(vocab_size=32, d_model=32, max_sequence_length=32)).eval()
    _randomize_(model, seed=1)
    prompts = [[3, 4, 5], [7]]
    free = generate(model, prompts, max_new_tokens=8, temperature=1.0, seed=5)
    assert generate(model, prompts, max_new_tokens=8, temperature=1.0, top_k=top_k, seed=5) == free
