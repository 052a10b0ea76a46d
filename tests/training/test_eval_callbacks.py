"""Evaluation callbacks inside a real tiny fit: bits per byte, downstream tasks."""

import math

import pytest
from training_helpers import fit, fit_subprocess, scalars, tiny_args

from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.train import metrics as M

TEXTS = ["def f(x):\n    return x + 1\n", "héllo wörld, naïve café €5 ", "emoji 😀 and 中文 text\n"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(TEXTS * 30, vocab_size=300)


def test_fit_logs_val_bpb_with_the_callback(shards, tmp_path, tokenizer):
    """Through the CLI with OLMo-style raw shards (no sidecar), the BitsPerByte callback adds val/bpb."""
    tok_path = tmp_path / "tok.json"
    tokenizer.save(str(tok_path))
    extra = (
        "--data.vocab_size",
        "300",
        "--data.val_paths",
        f"[{shards}]",
        "--trainer.val_check_interval",
        "2",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.callbacks+",
        "olmo2_lit.callbacks.bits_per_byte.BitsPerByte",
        "--trainer.callbacks.tokenizer",
        str(tok_path),
    )
    fit(tiny_args(tmp_path, shards, max_steps=2, extra=extra))
    bpb, ce = scalars(tmp_path, M.VAL_BPB), scalars(tmp_path, M.VAL_CE_LOSS)
    assert len(bpb) == len(ce) == 2 and [s for s, _ in bpb] == [s for s, _ in ce]
    # Same held-out batches each time: bpb / (ce / ln 2) = tokens / bytes is one constant.
    ratios = [b / (c / math.log(2)) for (_, b), (_, c) in zip(bpb, ce)]
    assert ratios[0] == pytest.approx(ratios[1], rel=1e-5)
    assert abs(ratios[0] - 1) > 1e-3  # EOS (id 0) counts 0 bytes, merged tokens several


def test_downstream_eval_logs_per_task_metrics_in_a_fit(shards, tmp_path, tokenizer):
    """DownstreamEval inside fit logs downstream/<task>/<metric> to TensorBoard at its steps, and the
    values equal an offline evaluation of the checkpoint saved at the same step."""
    import json

    import torch
    from training_helpers import load_weights

    from olmo2_lit.eval.metrics import task_metrics
    from olmo2_lit.eval.scoring import score_instances, tokenize_task
    from olmo2_lit.eval.tasks import load_task
    from olmo2_lit.model import Transformer

    tok_path = tmp_path / "tok.json"
    tokenizer.save(str(tok_path))
    task_file = tmp_path / "mini.jsonl"
    rows = [
        {"context": f"def f(x):\n    return x + {i}", "choices": ["\n", " +", " *", "("], "label": i % 4}
        for i in range(10)
    ]
    task_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = json.dumps([{"path": str(task_file)}])
    extra = (
        "--data.vocab_size",
        "300",
        "--checkpoint.every_n_train_steps",
        "2",
        "--trainer.callbacks+",
        "olmo2_lit.callbacks.downstream_eval.DownstreamEval",
        "--trainer.callbacks.tasks",
        tasks,
        "--trainer.callbacks.tokenizer",
        str(tok_path),
        "--trainer.callbacks.every_n_steps",
        "2",
        "--trainer.callbacks.batch_size",
        "7",
    )
    cli = fit(tiny_args(tmp_path, shards, max_steps=4, extra=extra))
    logged = {
        m: scalars(tmp_path, M.DOWNSTREAM.format(task="mini", metric=m))
        for m in ("acc", "len_norm", "pmi_dc", "primary")
    }
    assert [s for s, _ in logged["acc"]] == [2, 4]
    assert [v for _, v in logged["primary"]] == [v for _, v in logged["acc"]]
    model = Transformer(cli.model.config).eval()
    sd = load_weights(tmp_path / "ckpt" / "step0000002.ckpt")
    model.load_state_dict({k.removeprefix("model."): v for k, v in sd.items()})
    instances = tokenize_task(load_task(str(task_file)), tokenizer, context_length=64)
    with torch.no_grad():
        expected = task_metrics(instances, *score_instances(model, instances, batch_size=3))
    for m in ("acc", "len_norm", "pmi_dc"):
        assert logged[m][0][1] == pytest.approx(expected[m], abs=1e-6), m


@pytest.mark.slow
def test_downstream_eval_on_two_ranks_gathers_every_request(shards, tmp_path, tokenizer):
    """Two DDP ranks (gloo, subprocesses) each score part of the batches (5 batches: one rank runs a
    padding batch so both do 3 forward passes) and gather; the logged metrics equal an offline
    evaluation of the step-2 checkpoint over all requests."""
    import json

    import torch

    from olmo2_lit.eval.metrics import task_metrics
    from olmo2_lit.eval.scoring import score_instances, tokenize_task
    from olmo2_lit.eval.tasks import load_task
    from olmo2_lit.weights.pretrained import load_pretrained

    tok_path = tmp_path / "tok.json"
    tokenizer.save(str(tok_path))
    task_file = tmp_path / "mini.jsonl"
    rows = [
        {"context": f"x = {i} * y", "choices": ["\n", " +", " *", "("], "label": i % 4} for i in range(10)
    ]
    task_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = (
        "--data.vocab_size",
        "300",
        "--checkpoint.every_n_train_steps",
        "2",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--data.micro_batch_size",
        "4",
        "--trainer.callbacks+",
        "olmo2_lit.callbacks.downstream_eval.DownstreamEval",
        "--trainer.callbacks.tasks",
        json.dumps([{"path": str(task_file)}]),
        "--trainer.callbacks.tokenizer",
        str(tok_path),
        "--trainer.callbacks.every_n_steps",
        "2",
        "--trainer.callbacks.batch_size",
        "9",
    )
    fit_subprocess(tiny_args(tmp_path, shards, max_steps=2, extra=extra), tmp_path)
    logged = {m: scalars(tmp_path, M.DOWNSTREAM.format(task="mini", metric=m)) for m in ("acc", "pmi_dc")}
    assert [s for s, _ in logged["acc"]] == [2]
    model = load_pretrained(tmp_path / "ckpt" / "step0000002.ckpt").eval()
    instances = tokenize_task(load_task(str(task_file)), tokenizer, context_length=64)
    with torch.no_grad():
        expected = task_metrics(instances, *score_instances(model, instances, batch_size=4))
    for m in ("acc", "pmi_dc"):
        assert logged[m][0][1] == pytest.approx(expected[m], abs=1e-6), m
