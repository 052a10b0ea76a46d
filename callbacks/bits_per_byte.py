"""Give validation the tokenizer it needs for bits per byte when the shards do not record it."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer

from olmo2_lit.eval.bits_per_byte import token_byte_lengths
from olmo2_lit.shard_format.tokenizer import load_tokenizer


class BitsPerByte(Callback):
    """Log ``val/bpb`` and ``test/bpb`` using this tokenizer's byte lengths.

    Shards written by ``olmo2-lit prepare`` record their tokenizer and need no callback; OLMo's own raw
    ``.npy`` shards do not, so name the tokenizer here (dolma2: ``allenai_dolma2.json``).

    Args:
        tokenizer: the tokenizer.json the held-out shards were tokenized with.
    """

    def __init__(self, *, tokenizer: str) -> None:
        self.tokenizer = tokenizer

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        tok = load_tokenizer(self.tokenizer)
        vocab = pl_module.config.vocab_size
        n = tok.get_vocab_size(with_added_tokens=True)
        if n > vocab:
            raise ValueError(
                f"BitsPerByte: {self.tokenizer} has {n} tokens, more "
                f"than the model's vocab_size {vocab}; pass the tokenizer the data was tokenized with"
            )
        pl_module.use_token_bytes(token_byte_lengths(tok, size=vocab))
