"""Training the byte-level BPE that ``prepare`` uses when no tokenizer is given."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from olmo2_lit.errors import ConfigError
from olmo2_lit.shard_format.tokenizer import DEFAULT_EOS


def train_bpe(texts: Iterable[str], *, vocab_size: int, eos_token: str = DEFAULT_EOS) -> Tokenizer:
    """Train a byte-level BPE (GPT-2 style: no unknown tokens, any text round-trips).

    Args:
        texts: training documents, streamed.
        vocab_size: target size including the 256 byte tokens and ``eos_token`` (id 0). A small corpus
            may stop short of it; ids then stay below it anyway.
        eos_token: the special token appended after each document.
    """
    if vocab_size <= 257:
        raise ConfigError(
            f"vocab_size must exceed 257 (256 bytes + EOS) for a byte-level BPE, got {vocab_size}; raise "
            "--vocab_size, or pass --tokenizer"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[eos_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer
