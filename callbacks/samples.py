"""At the end of fit: print a few samples, and where the logs and checkpoints are."""

from __future__ import annotations

from typing import Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from olmo2_lit.data.tokenizer import load_tokenizer
from olmo2_lit.model.generate import generate


class PrintSamples(Callback):
    """Generate from a few prompts once training ends, then print the TensorBoard and checkpoint
    locations. Rank 0 only.

    Args:
        prompts: texts to continue.
        max_new_tokens: tokens to generate per prompt.
        temperature: sampling temperature (0 = greedy).
        tokenizer: a tokenizer.json; None uses the datamodule's ``tokenizer_path``.
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

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        path = self.tokenizer or getattr(trainer.datamodule, "tokenizer_path", None)
        if path:
            tok = load_tokenizer(str(path))
            was_training = pl_module.training
            pl_module.eval()
            print("\n=== samples ===")
            # One batch, KV-cache decoding (olmo2_lit.model.generate).
            outputs = generate(
                pl_module.model,
                [tok.encode(p).ids for p in self.prompts],
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                eos_id=tok.token_to_id("<|endoftext|>"),
            )
            for prompt, ids in zip(self.prompts, outputs):
                print(f"--- {prompt!r}\n{prompt}{tok.decode(ids)}")
            pl_module.train(was_training)
        if trainer.logger is not None and trainer.logger.log_dir:
            print(
                f"\nTensorBoard logs: {trainer.logger.log_dir}\n"
                f"  view: tensorboard --logdir {trainer.logger.save_dir}"
            )
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and (ckpt.last_model_path or ckpt.best_model_path):
            print(f"checkpoint: {ckpt.last_model_path or ckpt.best_model_path}")
