"""Bits per byte: the byte table against UTF-8 sizes, the module's metric against a hand computation
(the real fit is in tests/training/test_eval_callbacks.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from olmo2_lit.eval.bits_per_byte import token_byte_lengths
from olmo2_lit.model import ModelConfig
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.shard_format.tokenizer import load_tokenizer
from olmo2_lit.train import metrics as M
from olmo2_lit.train.lit_module import OLMo2LitModule

TEXTS = ["def f(x):\n    return x + 1\n", "héllo wörld, naïve café €5 ", "emoji 😀 and 中文 text\n"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(TEXTS * 30, vocab_size=300)


def test_token_bytes_sum_to_the_utf8_size(tokenizer):
    """Sum of table[id] over an encoding is the text's UTF-8 size, multi-byte characters split across
    tokens included; the EOS special token counts 0; ids past the tokenizer (padding) count 0."""
    table = token_byte_lengths(tokenizer, size=320)
    for text in TEXTS + ["unseen ✓ ünïcödé 🙂🙂", "x" * 50]:
        assert int(table[tokenizer.encode(text).ids].sum()) == len(text.encode("utf-8"))
    assert int(table[tokenizer.token_to_id("<|endoftext|>")]) == 0
    assert table[tokenizer.get_vocab_size() :].eq(0).all() and table.numel() == 320


def test_validation_logs_bpb_equal_to_a_hand_computation(tokenizer):
    """val/bpb = summed CE in nats / (ln 2 * UTF-8 bytes of the targets), accumulated over batches;
    reference: F.cross_entropy by hand and byte counts from the texts themselves."""
    cfg = ModelConfig.tiny(vocab_size=300)
    module = OLMo2LitModule(config=cfg)
    module.configure_model()
    module.token_bytes = token_byte_lengths(tokenizer, size=300)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    eos = tokenizer.token_to_id("<|endoftext|>")
    total_nats, total_bytes = 0.0, 0
    for text in TEXTS:
        ids = torch.tensor([tokenizer.encode(text).ids + [eos]])
        inputs, labels = ids[:, :-1], ids[:, 1:].clone()
        labels[0, 0] = -100  # an ignored target: neither its loss nor its bytes count
        with torch.no_grad():
            module.validation_step({"input_ids": inputs, "labels": labels}, 0)
            logits = module.model(inputs)
        total_nats += float(F.cross_entropy(logits[0], labels[0], ignore_index=-100, reduction="sum"))
        first_two = tokenizer.decode(ids[0, :2].tolist())  # the input-only token and the ignored target
        total_bytes += len(text.encode()) - len(first_two.encode())
    module.on_validation_epoch_end()
    assert logged[M.VAL_BPB] == pytest.approx(total_nats / (math.log(2) * total_bytes), rel=1e-5)
    assert logged[M.VAL_BPB] > 1.0  # an untrained model: several bits per byte


def test_the_table_comes_from_the_tokenizer_the_datamodule_records(tmp_path):
    """Shards from `olmo2-lit prepare` name their tokenizer.json (the datamodule's tokenizer_identity);
    raw shards, or a datamodule outside the RunData contract, give no table."""
    from olmo2_lit.data.datamodule import TokenShardDataModule
    from olmo2_lit.data.mixture import DataSource
    from olmo2_lit.eval.bits_per_byte import held_out_token_bytes
    from olmo2_lit.prepare.prepare import prepare

    (tmp_path / "c.txt").write_text("\n".join(TEXTS * 40))
    prepare(inputs=[str(tmp_path / "c.txt")], output_dir=str(tmp_path / "d"), vocab_size=300, progress=False)
    (tmp_path / "raw").mkdir()
    torch.zeros(64, dtype=torch.int16).numpy().tofile(tmp_path / "raw" / "part-0.npy")

    def data(path):
        return TokenShardDataModule(
            vocab_size=300, train_sources=[DataSource(paths=[str(path)])], sequence_length=8
        )

    table = held_out_token_bytes(data(tmp_path / "d" / "train"), 300)
    assert torch.equal(
        table, token_byte_lengths(load_tokenizer(str(tmp_path / "d" / "tokenizer.json")), size=300)
    )
    assert held_out_token_bytes(data(tmp_path / "raw"), 300) is None
    assert held_out_token_bytes(object(), 300) is None
