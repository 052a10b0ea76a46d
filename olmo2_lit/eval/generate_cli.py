"""``olmo2-lit generate``: continue prompts with a trained model, printing tokens as they come."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, TextIO

from tokenizers import Tokenizer

from olmo2_lit.errors import ConfigError
from olmo2_lit.eval.tokenizer_lookup import check_vocab, tokenizer_from_run
from olmo2_lit.model.generate import check_sampling, stream
from olmo2_lit.shard_format.tokenizer import DEFAULT_EOS, load_tokenizer
from olmo2_lit.weights.pretrained import load_pretrained


def _read_prompts(prompt: Optional[list[str]], prompt_file: Optional[str]) -> list[tuple[str, str]]:
    """(text, where) pairs; ``where`` names the argument or the file and line, for errors."""
    prompts = [(p, f"--prompt {i}") for i, p in enumerate(prompt or [])]
    if prompt_file:
        if not Path(prompt_file).is_file():
            raise ConfigError(
                f"--prompt_file {prompt_file}: not a file; pass a UTF-8 text file with one prompt per line"
            )
        try:
            lines = Path(prompt_file).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"--prompt_file {prompt_file}: not UTF-8 at byte {err.start}; save it as UTF-8"
            ) from None
        prompts += [(line, f"{prompt_file} line {n}") for n, line in enumerate(lines, 1) if line.strip()]
        if not prompts:
            raise ConfigError(
                f"--prompt_file {prompt_file}: holds no non-empty line; write one prompt per line"
            )
    if not prompts:
        raise ConfigError("no prompt: pass --prompt+ TEXT (repeatable) or --prompt_file FILE (one per line)")
    return prompts


def _check_sampling(
    max_new_tokens: int, temperature: float, top_k: Optional[int], top_p: Optional[float]
) -> None:
    """The sampling arguments, checked before the model is loaded."""
    if max_new_tokens < 1:
        raise ConfigError(
            f"--max_new_tokens must be >= 1 (tokens to generate per prompt), got {max_new_tokens}"
        )
    check_sampling(temperature, top_k, top_p, flag="--")


def _check_device(device: str) -> None:
    """``device`` names a device torch can use here."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: torch sees no CUDA device on this machine; use --device cpu")


def _resolve_tokenizer(checkpoint: Path, tokenizer: Optional[str]) -> tuple[Tokenizer, str]:
    if tokenizer:
        return load_tokenizer(tokenizer), tokenizer
    candidates = [checkpoint / "tokenizer.json"] if checkpoint.is_dir() else []
    found = next((c for c in candidates if c.is_file()), None)
    if found is None and checkpoint.is_file():
        found = tokenizer_from_run(checkpoint)
    if found is None:
        raise ConfigError(
            f"{checkpoint}: cannot tell which tokenizer the model was trained with (no tokenizer.json in "
            "the directory, no run config.yaml with prepared shards beside the checkpoint); pass --tokenizer"
        )
    return load_tokenizer(str(found)), str(found)


class _Printer:
    """Prints a row's text as its tokens arrive, holding back an incomplete UTF-8 character."""

    def __init__(self, tokenizer: Tokenizer, out: TextIO) -> None:
        self.tokenizer, self.out = tokenizer, out
        self.ids: list[int] = []
        self.shown = 0

    def add(self, token: int) -> None:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if not text.endswith("\ufffd"):
            self.out.write(text[self.shown :])
            self.out.flush()
            self.shown = len(text)

    def finish(self) -> None:
        text = self.tokenizer.decode(self.ids)
        self.out.write(text[self.shown :] + "\n")
        self.out.flush()


def generate(
    checkpoint: str,
    *,
    prompt: Optional[list[str]] = None,
    prompt_file: Optional[str] = None,
    tokenizer: Optional[str] = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    seed: int = 0,
    eos_token: str = DEFAULT_EOS,
    stop: Optional[list[str]] = None,
    device: str = "cpu",
    dtype: Optional[str] = None,
) -> None:
    """Continue prompts with a trained model (KV-cache decoding), printing each token as it comes.

    Args:
        checkpoint: a Lightning .ckpt saved by ``olmo2-lit fit``, a native weights directory or an HF
            OLMo 2 directory.
        prompt: a prompt text; repeat the flag for several.
        prompt_file: a UTF-8 file with one prompt per non-empty line.
        tokenizer: the tokenizer.json the model was trained with. Default: ``tokenizer.json`` in the
            checkpoint directory, or for a .ckpt the one recorded by the run's shards (found through
            the run's config.yaml); an error says when it cannot be found.
        max_new_tokens: most tokens to generate per prompt.
        temperature: 0 = greedy; otherwise sample from softmax(logits / temperature).
        top_k: sample among the k most likely tokens only.
        top_p: nucleus sampling: the smallest set of tokens with this much probability.
        seed: sampling seed.
        eos_token: generation of a prompt stops at this token (if the tokenizer has it).
        stop: generation of a prompt also stops once it has produced this text's tokens (the text
            encoded alone, matched on token ids; printed); repeat the flag for several.
        device: cpu, cuda, cuda:1, ...
        dtype: cast the weights (float32, bfloat16, ...); default keeps the stored dtype.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise ConfigError(
            f"--checkpoint {checkpoint}: not found; pass a .ckpt saved by olmo2-lit fit, a native weights "
            "directory or an HF OLMo 2 directory"
        )
    prompts = _read_prompts(prompt, prompt_file)
    _check_sampling(max_new_tokens, temperature, top_k, top_p)
    _check_device(device)
    tok, tok_source = _resolve_tokenizer(path, tokenizer)
    model = load_pretrained(path, dtype=dtype).to(device).eval()
    check_vocab(tok, model.config, source=tok_source)
    context = model.config.max_sequence_length
    encoded = []
    for text, where in prompts:
        ids = tok.encode(text).ids
        if not ids:
            raise ConfigError(f"{where}: the prompt {text!r} encodes to no tokens; give it some text")
        if len(ids) > context:
            raise ConfigError(
                f"{where}: the prompt has {len(ids)} tokens, longer than the model's context of {context} "
                "tokens; shorten it"
            )
        encoded.append(ids)
    eos_id = tok.token_to_id(eos_token)
    stops = []
    for text in stop or []:
        ids = tok.encode(text, add_special_tokens=False).ids
        if not ids:
            raise ConfigError(f"--stop {text!r}: the stop text encodes to no tokens; give it some text")
        stops.append(ids)
    for i, ((text, _), ids) in enumerate(zip(prompts, encoded)):
        print(f"=== {i}", flush=True)
        sys.stdout.write(text)
        printer = _Printer(tok, sys.stdout)
        for (token,) in stream(
            model,
            [ids],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=eos_id,
            stop=stops,
            seed=seed + i,
        ):
            if token is None or token == eos_id:
                break
            printer.add(token)
        printer.finish()
