"""``olmo2-lit generate`` end to end on a native dir and a Lightning .ckpt, and its bad-input errors."""

import json

import pytest
import torch

from olmo2_lit.cli import main
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.model.generate import generate
from olmo2_lit.prepare.prepare import prepare
from olmo2_lit.shard_format.tokenizer import load_tokenizer
from olmo2_lit.weights.export import save_native

TEXT = "\n".join(f"def function_{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(400))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Prepared shards with a trained BPE, and a model whose vocab matches it."""
    root = tmp_path_factory.mktemp("gen")
    (root / "corpus.txt").write_text(TEXT)
    prepare(inputs=[str(root / "corpus.txt")], output_dir=str(root / "data"), vocab_size=300, progress=False)
    tok = load_tokenizer(str(root / "data" / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(vocab_size=tok.get_vocab_size(), max_sequence_length=32)
    model = Transformer(cfg).eval()
    return root, tok, model


def _expected(model, tok, prompt: str, n: int) -> str:
    eos = tok.token_to_id("<|endoftext|>")
    return prompt + tok.decode(generate(model, [tok.encode(prompt).ids], max_new_tokens=n, eos_id=eos)[0])


def test_generate_native_dir_prints_the_greedy_continuation(run, capsys):
    """The verb loads the weights and the directory's tokenizer.json and prints exactly what greedy
    generation on the in-memory model decodes to, for each prompt (flag and file)."""
    root, tok, model = run
    save_native(model, root / "native")
    (root / "native" / "tokenizer.json").write_text(tok.to_str())
    (root / "prompts.txt").write_text("class A:\n\nreturn x\n")
    main(
        [
            "generate",
            "--checkpoint",
            str(root / "native"),
            "--prompt+",
            "def f",
            "--prompt+",
            "import ",
            "--prompt_file",
            str(root / "prompts.txt"),
            "--max_new_tokens",
            "12",
        ]
    )
    out = capsys.readouterr().out
    blocks = [b.removeprefix("\n") for b in out.split("=== ")[1:]]
    expected = [_expected(model, tok, p, 12) for p in ("def f", "import ", "class A:", "return x")]
    assert [b.split("\n", 1)[1].rstrip("\n") for b in blocks] == expected


def test_checkpoint_finds_the_tokenizer_of_its_run(run, capsys):
    """For a .ckpt the tokenizer comes from the run's config.yaml -> shard sidecar -> tokenizer.json;
    without a config.yaml the error asks for --tokenizer (``--debug``: the error itself, not its report)."""
    root, tok, model = run
    version = root / "runs" / "olmo2" / "version_0"
    (version / "checkpoints").mkdir(parents=True)
    ckpt = version / "checkpoints" / "last.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "olmo2_lit": {"model_config": model.config.to_dict()}}, ckpt)
    with pytest.raises(ValueError, match="cannot tell which tokenizer.*pass --tokenizer"):
        main(["generate", "--checkpoint", str(ckpt), "--prompt+", "def ", "--debug"])
    config = {
        "data": {
            "vocab_size": model.config.vocab_size,
            "train_sources": [{"paths": [str(root / "data" / "train")]}],
        }
    }
    (version / "config.yaml").write_text(json.dumps(config))  # YAML is a superset of JSON
    main(["generate", "--checkpoint", str(ckpt), "--prompt+", "def ", "--max_new_tokens", "6"])
    assert capsys.readouterr().out.split("\n", 1)[1].rstrip("\n") == _expected(model, tok, "def ", 6)


def test_bad_input_errors_name_the_cause(run, tmp_path):
    """Vocab mismatch names the tokenizer and both sizes; an over-long prompt names its file line."""
    root, tok, model = run
    small = Transformer(ModelConfig.tiny(vocab_size=tok.get_vocab_size() + 1, max_sequence_length=32))
    save_native(small, tmp_path / "other")
    with pytest.raises(
        ValueError,
        match=rf"tokenizer has {tok.get_vocab_size()} tokens but the model was "
        rf"trained with vocab_size {tok.get_vocab_size() + 1}",
    ):
        main(
            [
                "generate",
                "--checkpoint",
                str(tmp_path / "other"),
                "--prompt+",
                "x",
                "--tokenizer",
                str(root / "data" / "tokenizer.json"),
                "--debug",  # the error itself (olmo2-lit reports it in a line otherwise)
            ]
        )
    save_native(model, tmp_path / "m")
    (tmp_path / "p.txt").write_text("short\n\n" + "zq " * 40 + "\n")
    with pytest.raises(
        ValueError,
        match=r"p.txt line 3: the prompt has \d+ tokens, longer than the model's "
        r"context of 32",
    ):
        main(
            [
                "generate",
                "--checkpoint",
                str(tmp_path / "m"),
                "--prompt_file",
                str(tmp_path / "p.txt"),
                "--tokenizer",
                str(root / "data" / "tokenizer.json"),
                "--debug",  # the error itself (olmo2-lit reports it in a line otherwise)
            ]
        )


def test_print_samples_callback_prints_cached_greedy_generation(run, capsys):
    """The quickstart's PrintSamples prints, per prompt, the prompt plus the batched KV-cache greedy
    continuation (reference: generate() one prompt at a time)."""
    from types import SimpleNamespace

    from olmo2_lit.callbacks.samples import PrintSamples

    root, tok, model = run
    holder = torch.nn.Module()
    holder.model, holder.config = model, model.config
    trainer = SimpleNamespace(datamodule=None, logger=None, checkpoint_callback=None, is_global_zero=True)
    prompts = ["def f", "import os\n"]
    cb = PrintSamples(
        prompts=prompts, max_new_tokens=10, temperature=0.0, tokenizer=str(root / "data" / "tokenizer.json")
    )
    cb.setup(trainer, holder, "fit")  # loads and checks the tokenizer, as in a run
    cb.on_fit_end(trainer, holder)
    out = capsys.readouterr().out
    for p in prompts:
        assert f"--- {p!r}\n{_expected(model, tok, p, 10)}\n" in out


def test_print_samples_cuts_each_row_at_its_own_eos(run, capsys):
    """Rows of the samples' batch that reach EOS at different steps: each printed continuation is the
    text before its row's EOS, as ``generate(..., eos_id=...)`` one prompt at a time gives (the callback
    runs every row ``max_new_tokens`` steps, in lockstep with the other ranks, and cuts at EOS after).
    EOS is made the greedy pick wherever a token the second row produces would be (that token's output
    row is copied to EOS's, and argmax takes the first of equal maxima)."""
    import copy
    from types import SimpleNamespace

    from olmo2_lit.callbacks.samples import PrintSamples

    root, tok, model = run
    eos, prompts = tok.token_to_id("<|endoftext|>"), ["def f", "import os\n"]
    free = generate(model, [tok.encode(p).ids for p in prompts], max_new_tokens=12)

    def first(row: list[int], t: int) -> int:
        return row.index(t) if t in row else len(row)

    # a token the second row produces after its first step, at another step than the first row
    token = next(t for t in free[1] if first(free[1], t) > 0 and first(free[0], t) != first(free[1], t))
    assert eos < token
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.lm_head.weight[eos] = model.lm_head.weight[token]
    ends = [first(row, token) for row in free]
    holder = torch.nn.Module()
    holder.model, holder.config = model, model.config
    trainer = SimpleNamespace(datamodule=None, logger=None, checkpoint_callback=None, is_global_zero=True)
    cb = PrintSamples(
        prompts=prompts, max_new_tokens=12, temperature=0.0, tokenizer=str(root / "data" / "tokenizer.json")
    )
    cb.setup(trainer, holder, "fit")
    cb.on_fit_end(trainer, holder)
    out = capsys.readouterr().out
    for p, end, row in zip(prompts, ends, free):
        assert f"--- {p!r}\n{_expected(model, tok, p, 12)}\n" in out
        assert _expected(model, tok, p, 12) == p + tok.decode(row[:end])


def test_vocab_check_accepts_a_released_checkpoints_padded_vocab(run):
    """A released HF checkpoint records only its padded rows (OLMo 2: 100,352 for dolma2's 100,278):
    a smaller tokenizer padding to the same rows passes, a larger or much smaller one does not; our
    own checkpoints (vocab_size below the padded size) need the exact size."""
    from olmo2_lit.eval.tokenizer_lookup import check_vocab

    _, tok, _ = run
    n = tok.get_vocab_size()
    released = ModelConfig.tiny(vocab_size=-(-n // 128) * 128)  # rows only, as import_hf reads them
    check_vocab(tok, released, source="tok.json")
    for bad in (ModelConfig.tiny(vocab_size=128 * (-(-n // 128) + 1)), ModelConfig.tiny(vocab_size=n - 1)):
        with pytest.raises(ValueError, match=f"tokenizer has {n} tokens"):
            check_vocab(tok, bad, source="tok.json")
    check_vocab(tok, ModelConfig.tiny(vocab_size=n), source="tok.json")


def test_stop_text_ends_each_prompt_where_its_tokens_are_produced(run, tmp_path, capsys):
    """``--stop+ TEXT`` ends a prompt's generation right after the tokens TEXT encodes to (printed);
    a prompt whose continuation never produces them runs to --max_new_tokens. Reference: each
    prompt's free greedy continuation cut by hand."""
    root, tok, model = run
    save_native(model, tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text(tok.to_str())
    eos = tok.token_to_id("<|endoftext|>")
    prompts = ["def f", "import ", "class A:"]
    free = {p: generate(model, [tok.encode(p).ids], max_new_tokens=12, eos_id=eos)[0] for p in prompts}
    # a token first produced mid-way through a continuation, that encodes alone to itself
    row = free["import "]
    stop_tok = next(t for t in row if row.index(t) >= 2 and tok.encode(tok.decode([t])).ids == [t])
    stop = tok.decode([stop_tok])
    main(
        ["generate", "--checkpoint", str(tmp_path / "m"), "--max_new_tokens", "12", "--stop+", stop]
        + [a for p in prompts for a in ("--prompt+", p)]
    )
    blocks = [b.removeprefix("\n") for b in capsys.readouterr().out.split("=== ")[1:]]
    got = [b.split("\n", 1)[1].rstrip("\n") for b in blocks]
    expected = [p + tok.decode(r[: r.index(stop_tok) + 1] if stop_tok in r else r) for p, r in free.items()]
    assert got == expected
    assert len(got[1]) < len("import " + tok.decode(row))  # it really stopped early
    assert any(stop_tok not in r for r in free.values())  # and a row without it ran on


def test_sampling_seeds_prompt_i_with_seed_plus_i(run, tmp_path, capsys):
    """With temperature > 0 the verb samples prompt i with ``--seed + i``: two identical prompts get the
    continuations generate() samples with seeds s and s + 1 (different ones, not the same one twice)."""
    root, tok, model = run
    save_native(model, tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text(tok.to_str())
    eos, prompt, seed = tok.token_to_id("<|endoftext|>"), "def f", 3
    main(
        ["generate", "--checkpoint", str(tmp_path / "m"), "--prompt+", prompt, "--prompt+", prompt]
        + ["--max_new_tokens", "12", "--temperature", "1.0", "--seed", str(seed)]
    )
    blocks = [b.removeprefix("\n") for b in capsys.readouterr().out.split("=== ")[1:]]
    got = [b.split("\n", 1)[1].rstrip("\n") for b in blocks]
    ids = tok.encode(prompt).ids
    expected = [
        prompt + tok.decode(generate(model, [ids], max_new_tokens=12, temperature=1.0, eos_id=eos, seed=s)[0])
        for s in (seed, seed + 1)
    ]
    assert expected[0] != expected[1]  # the two seeds sample different continuations
    assert got == expected


def _byte_token(tok, byte: int) -> int:
    """The id of a byte-level BPE's single-byte token (GPT-2's byte -> printable character map)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    chars.update({b: chr(256 + n) for n, b in enumerate(b for b in range(256) if b not in printable)})
    return tok.token_to_id(chars[byte])


def test_a_character_split_across_tokens_prints_once_whole(run, tmp_path, capsys):
    """A multi-byte character whose UTF-8 bytes come as separate tokens is printed once complete, with no
    U+FFFD for its partial bytes. The model is set by hand to a chain: greedy continues the prompt's last
    token with the single-byte tokens of "日" (e6 97 a5), then of "é" (c3 a9), then EOS (one-hot
    embeddings, every block's output zeroed, an lm_head mapping each chain token to the next)."""
    root, tok, model = run
    eos, prompt = tok.token_to_id("<|endoftext|>"), "def f"
    chain = [tok.encode(prompt).ids[-1], *(_byte_token(tok, b) for b in "日é".encode()), eos]
    assert len(set(chain)) == len(chain) <= model.config.d_model
    cfg = model.config
    forced = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in forced.named_parameters():
            p.fill_(1.0 if "norm" in name else 0.0)
        for k, (t, nxt) in enumerate(zip(chain, chain[1:])):
            forced.embeddings.weight[t, k] = 1.0
            forced.lm_head.weight[nxt, k] = 1.0
    save_native(forced, tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text(tok.to_str())
    assert generate(forced, [tok.encode(prompt).ids], max_new_tokens=10, eos_id=eos) == [chain[1:-1]]
    main(["generate", "--checkpoint", str(tmp_path / "m"), "--prompt+", prompt, "--max_new_tokens", "10"])
    assert capsys.readouterr().out == f"=== 0\n{prompt}日é\n"
