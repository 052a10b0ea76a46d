import numpy as np
import pytest
import torch

from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.prepare.writer import RollingShardWriter

VOCAB, T, EOS = 256, 48, 0


@pytest.fixture
def packed_batch(tmp_path):
    """A batch from the datamodule whose rows pack several documents (uint8 shards: vocab 256)."""
    rng = np.random.default_rng(0)
    docs = [np.append(rng.integers(1, VOCAB, int(n)), EOS) for n in rng.integers(3, 20, 40)]
    w = RollingShardWriter(
        tmp_path,
        prefix="part",
        shard_size_tokens=10_000,
        vocab_size=VOCAB,
        eos_token_id=EOS,
        tokenizer="t.json",
        tokenizer_sha256="0" * 64,
    )
    w.write(np.concatenate(docs))
    w.close()
    dm = TokenShardDataModule(
        vocab_size=VOCAB,
        train_sources=[DataSource(paths=[str(tmp_path)])],
        sequence_length=T,
        global_batch_size=4,
        micro_batch_size=4,
        document_masking=True,
    )
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def _assert_packed_equals_alone(model, batch, *, rtol, atol):
    input_ids, doc_lens = batch["input_ids"], batch["doc_lens"]
    assert (doc_lens > 0).sum(1).min() >= 3  # every row really packs documents
    with torch.no_grad():
        packed = model(input_ids, doc_lens=doc_lens)
        unmasked = model(input_ids)
        for row in range(input_ids.shape[0]):
            start = 0
            for length in doc_lens[row][doc_lens[row] > 0].tolist():
                alone = model(input_ids[row : row + 1, start : start + length])
                torch.testing.assert_close(
                    packed[row : row + 1, start : start + length], alone, rtol=rtol, atol=atol
                )
                start += length
    assert not torch.allclose(
        packed, unmasked, atol=1e-3
    )  # without the mask, later documents see earlier ones


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logits_equal_each_document_run_alone(packed_batch, attention):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(vocab_size=VOCAB, attention=attention)).eval()
    _assert_packed_equals_alone(model, packed_batch, rtol=1e-4, atol=1e-5)


@pytest.mark.requires_cuda
@pytest.mark.parametrize("attention", ["sdpa", "xformers"])
def test_packed_logits_equal_each_document_run_alone_on_cuda(packed_batch, attention):
    if attention == "xformers":
        pytest.importorskip("xformers.ops")  # BlockDiagonalCausalMask over the flattened batch
    torch.manual_seed(0)
    model = Transformer(ModelConfig.tiny(vocab_size=VOCAB, attention=attention)).eval().cuda()
    batch = {k: v.cuda() for k, v in packed_batch.items()}
    _assert_packed_equals_alone(model, batch, rtol=1e-3, atol=1e-4)
