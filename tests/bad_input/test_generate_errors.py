"""``olmo2-lit generate``: a bad argument ends in one short message naming the flag (or file) and what to
pass instead, before the model is loaded where it can be; no traceback."""

import pytest
import torch
from conftest import assert_short_error

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.weights.export import save_native


@pytest.fixture
def model_dir(tmp_path):
    """A native weights dir of a 1-layer model and the (271-token) tokenizer.json it was made for."""
    tok = train_bpe(["def f(x):\n    return x\n"] * 20, vocab_size=300)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), d_model=16, n_layers=1, n_heads=2, mlp_hidden=32)
    save_native(Transformer(cfg), tmp_path / "model")
    tok.save(str(tmp_path / "model" / "tokenizer.json"))
    return tmp_path / "model"


@pytest.mark.parametrize(
    "args, culprits",
    [
        (["--prompt", "def "], ["--prompt takes a list", "--prompt+ 'def '"]),
        (["--prompt+", ""], ["--prompt 0", "encodes to no tokens"]),
        ([], ["no prompt", "--prompt+ TEXT", "--prompt_file"]),
        (["--prompt+", "a", "--max_new_tokens", "0"], ["--max_new_tokens must be >= 1", "got 0"]),
        (["--prompt+", "a", "--temperature", "-1"], ["--temperature must be >= 0", "got -1.0"]),
        (["--prompt+", "a", "--top_p", "1.5"], ["--top_p must be in (0, 1]", "got 1.5"]),
        (["--prompt+", "a", "--top_k", "-2"], ["--top_k must be >= 0", "got -2"]),
        (["--prompt+", "a", "--device", "cuda:99"], ["--device cuda:99", "use --device cpu"]),
        (["--prompt+", "a", "--device", "gpu"], ["--device 'gpu' is not a torch device"]),
        (["--prompt+", "a", "--dtype", "float64x"], ["dtype 'float64x' is not supported", "bfloat16"]),
        (["--prompt+", "a", "--stop+", ""], ["--stop ''", "encodes to no tokens"]),
    ],
)
def test_bad_generate_argument_is_named(model_dir, cli, args, culprits):
    """Guards against: `--prompt hi` (without +) answered by jsonargparse's 'Does not validate against any
    of the Union subtypes', an empty prompt, a negative temperature or top_p > 1 ending in a ValueError
    traceback, `--max_new_tokens 0` printing the prompt alone as if that were the answer, and `--device
    cuda` without CUDA ending in torch's AssertionError."""
    if "cuda:99" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: cuda:99 may be refused later, by torch")
    code, out = cli(["generate", f"--checkpoint={model_dir}", *args])
    assert_short_error(code, out, *culprits)


def test_missing_checkpoint_is_named_before_the_tokenizer(tmp_path, cli):
    """Guards against: a typo in --checkpoint reported as 'cannot tell which tokenizer the model was
    trained with' (a traceback), which sends the user after the wrong argument."""
    code, out = cli(["generate", f"--checkpoint={tmp_path / 'nope.ckpt'}", "--prompt+", "a"])
    assert_short_error(code, out, "--checkpoint", "nope.ckpt: not found")
    assert "tokenizer" not in out.split("not found")[0]


def test_checkpoint_without_a_known_tokenizer_asks_for_one(tmp_path, model_dir, cli):
    """Guards against: a ValueError traceback when no tokenizer can be found for the checkpoint."""
    (model_dir / "tokenizer.json").unlink()
    code, out = cli(["generate", f"--checkpoint={model_dir}", "--prompt+", "a"])
    assert_short_error(code, out, str(model_dir), "cannot tell which tokenizer", "pass --tokenizer")


@pytest.mark.parametrize("kind", ["missing", "directory", "not_utf8", "blank"])
def test_bad_prompt_file_is_named(tmp_path, model_dir, cli, kind):
    """Guards against: `[Errno 2] No such file or directory` naming no flag, a directory or a Latin-1
    file ending in a traceback, and a file of blank lines giving 'no prompt' without naming it."""
    path = tmp_path / "prompts.txt"
    if kind == "directory":
        path.mkdir()
    elif kind == "not_utf8":
        path.write_bytes("caf\u00e9\n".encode("latin-1"))
    elif kind == "blank":
        path.write_text("\n   \n")
    expected = {
        "missing": "not a file",
        "directory": "not a file",
        "not_utf8": "not UTF-8 at byte 3",
        "blank": "holds no non-empty line",
    }[kind]
    code, out = cli(["generate", f"--checkpoint={model_dir}", f"--prompt_file={path}"])
    assert_short_error(code, out, f"--prompt_file {path}", expected)


def test_unreadable_tokenizer_is_named(tmp_path, model_dir, cli):
    """Guards against: a tokenizer path that is not a tokenizer.json (a JSONL file given by mistake)
    ending in a ValueError traceback."""
    (tmp_path / "docs.jsonl").write_text('{"text": "hi"}\n')
    code, out = cli(
        ["generate", f"--checkpoint={model_dir}", "--prompt+", "a", f"--tokenizer={tmp_path / 'docs.jsonl'}"]
    )
    assert_short_error(code, out, "docs.jsonl: not a readable tokenizers tokenizer.json")


def test_tokenizer_of_another_size_is_named(tmp_path, model_dir, cli):
    """Guards against: decoding with a tokenizer the model was not trained with (a ValueError traceback)."""
    train_bpe(["def g(y):\n    return y\n"] * 20, vocab_size=260).save(str(tmp_path / "small.json"))
    code, out = cli(
        ["generate", f"--checkpoint={model_dir}", "--prompt+", "a", f"--tokenizer={tmp_path / 'small.json'}"]
    )
    assert_short_error(code, out, "small.json", "tokenizer has 260 tokens", "vocab_size 271")


def test_a_good_call_still_generates(model_dir, cli):
    """The checks refuse nothing that worked: greedy, 3 new tokens, the list in JSON form."""
    code, out = cli(["generate", f"--checkpoint={model_dir}", '--prompt=["def "]', "--max_new_tokens=3"])
    assert code == 0 and "=== 0" in out and "def " in out, out
