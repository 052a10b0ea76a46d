"""At the end of fit: print a few samples, and where the logs and checkpoints are.

The tokenizer is checked in ``setup``, before the first step, not after the compute is spent.
"""

from __future__ import annotations

from typing import Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from tokenizers import Tokenizer

from olmo2_lit.data.contract import RunData
from olmo2_lit.errors import ConfigError
from olmo2_lit.model.generate import generate
from olmo2_lit.shard_format.tokenizer import DEFAULT_EOS, load_tokenizer, tokenizer_sha256


class PrintSamples(Callback):
    """Generate from a few prompts once training ends, then print the TensorBoard and checkpoint
    locations (rank 0 prints).

    Every rank generates: under FSDP or ZeRO-3 each forward gathers the sharded weights, a collective
    that every rank must join, so a rank-0-only generation would wait for the others forever (or fail
    once they exit). The rows run all ``max_new_tokens`` steps on every rank, whatever each rank
    samples, so the ranks make the same forwards; each row is cut at its first EOS afterwards (the
    sampler draws for the whole batch at every step, so the text is the one an EOS-stopped run gives).

    Args:
        prompts: texts to continue.
        max_new_tokens: tokens to generate per prompt.
        temperature: sampling temperature (0 = greedy).
        tokenizer: the tokenizer.json the training shards were written with (``prepare`` puts it
            beside them); None prints no samples.
    """

    def __init__(
        self,
        *,
        prompts: list[str] = ("def ", "import "),
        max_new_tokens: int = 48,
        temperature: float = 0.7,
        tokenizer: Optional[str] = None,
    ) -> None:
        self.prompts = list(prompts)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.tokenizer = tokenizer
        self._tok: Optional[Tokenizer] = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Load the tokenizer and check it against the model's vocab and the shards' sidecars."""
        if stage != "fit" or self.tokenizer is None:
            return
        where = "PrintSamples.tokenizer"
        try:
            tok = load_tokenizer(str(self.tokenizer))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{where}: {err}; fix the path or remove the callback") from None
        size, vocab = tok.get_vocab_size(with_added_tokens=True), pl_module.config.vocab_size
        if size > vocab:
            raise ConfigError(
                f"{where}: {self.tokenizer} has {size:,} tokens but the model's vocab_size is {vocab:,}; "
                "it is not the tokenizer of this data"
            )
        data = trainer.datamodule
        recorded = data.tokenizer_identity() if isinstance(data, RunData) else None
        if recorded is not None and recorded.sha256 != tokenizer_sha256(tok):
            raise ConfigError(
                f"{where}: {self.tokenizer} is not the tokenizer the training shards were written with "
                "(their .meta.json records another sha256); use the tokenizer.json beside those shards"
            )
        self._tok = tok

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        samples = self._generate(pl_module) if self._tok is not None else None
        if not trainer.is_global_zero:
            return
        if samples is not None:
            print("\n=== samples ===")
            for prompt, text in zip(self.prompts, samples):
                print(f"--- {prompt!r}\n{prompt}{text}")
        if trainer.logger is not None and trainer.logger.log_dir:
            print(
                f"\nTensorBoard logs: {trainer.logger.log_dir}\n"
                f"  view: tensorboard --logdir {trainer.logger.save_dir}"
            )
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and (ckpt.last_model_path or ckpt.best_model_path):
            print(f"checkpoint: {ckpt.last_model_path or ckpt.best_model_path}")

    def _generate(self, pl_module: LightningModule) -> list[str]:
        """Every prompt's continuation, on every rank: one batch, KV-cache decoding, cut at EOS."""
        tok = self._tok
        eos = tok.token_to_id(DEFAULT_EOS)
        was_training = pl_module.training
        pl_module.eval()
        outputs = generate(
            pl_module.model,
            [tok.encode(p).ids for p in self.prompts],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
        )
        pl_module.train(was_training)
        return [tok.decode(ids[: ids.index(eos)] if eos in ids else ids) for ids in outputs]
