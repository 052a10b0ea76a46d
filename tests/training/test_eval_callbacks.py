"""Evaluation callbacks inside a real tiny fit: bits per byte, downstream tasks."""

import math

import pytest
from training_helpers import fit, scalars, tiny_args

from olmo2_lit.data.tokenizer import train_bpe
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
