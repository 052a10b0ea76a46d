"""``olmo2-lit predict`` writes what it predicts: one JSON line per instance, to a file it names."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from tokenizers import Tokenizer

from olmo2_lit.atomic import atomic_file
from olmo2_lit.data.contract import RunData
from olmo2_lit.errors import ConfigError, OutputExistsError
from olmo2_lit.shard_format.tokenizer import load_tokenizer


class PredictionWriter(BasePredictionWriter):
    """Write each instance's greedy next-token predictions as JSON lines, atomically.

    A line: ``{"index": global instance id, "predicted_ids": [...], "text": ...}``; ``text`` (the
    decoded predictions) only when a tokenizer is known: ``tokenizer``, else the one the shards' sidecars
    record (``datamodule.tokenizer_identity()``), when its ``tokenizer.json`` is beside them.

    Args:
        path: the output file; None: ``<default_root_dir>/predictions.jsonl`` (``.rank<r>`` before the
            suffix on ranks other than 0 of several).
        tokenizer: a tokenizer.json to decode the predictions with.
    """

    def __init__(self, *, path: Optional[str] = None, tokenizer: Optional[str] = None) -> None:
        super().__init__(write_interval="batch")
        self.path = path
        self.tokenizer = tokenizer
        self._stack: Optional[ExitStack] = None
        self._file = None
        self._tok = None
        self.written: Optional[Path] = None

    def _target(self, trainer: Trainer) -> Path:
        path = Path(self.path) if self.path else Path(trainer.default_root_dir) / "predictions.jsonl"
        if trainer.world_size > 1 and trainer.global_rank > 0:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        return path

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._tok = _find_tokenizer(self.tokenizer, trainer.datamodule)
        self.written = self._target(trainer)
        _check_replaceable(self.written)
        self._stack = ExitStack()
        self._file = self._stack.enter_context(atomic_file(self.written, "w"))

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Optional[Sequence[int]],
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        ids = (
            prediction.detach().cpu() if isinstance(prediction, torch.Tensor) else torch.as_tensor(prediction)
        )
        index = batch.get("index") if isinstance(batch, dict) else None
        for row in range(ids.shape[0]):
            record = {
                "index": int(index[row]) if index is not None else None,
                "predicted_ids": ids[row].tolist(),
            }
            if self._tok is not None:
                record["text"] = self._tok.decode(record["predicted_ids"])
            self._file.write(json.dumps(record) + "\n")

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stack.close()  # renames the finished file into place
        self._stack = None
        if trainer.is_global_zero:
            kind = "token ids and text" if self._tok else "token ids; no tokenizer known to decode them"
            print(f"predictions ({kind}): {self.written}", flush=True)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if self._stack is not None:  # drop the partial file
            self._stack.__exit__(type(exception), exception, exception.__traceback__)
            self._stack = None


def _check_replaceable(path: Path) -> None:
    """``path`` may be replaced only if it is absent or a predictions file (its first line a JSON object
    with ``predicted_ids``): a ``--predictions.path`` typo must not overwrite someone's file."""
    if path.is_dir():
        raise ConfigError(f"predictions.path {path} is a directory; pass the .jsonl file to write")
    if not path.exists():
        return
    with open(path, "rb") as f:
        first = f.readline()
    try:
        ours = "predicted_ids" in json.loads(first)
    except (ValueError, TypeError):
        ours = False
    if not ours and path.stat().st_size > 0:
        raise OutputExistsError(
            f"predictions.path {path} exists and is not a predictions file (no predicted_ids in its first "
            "line); pick another --predictions.path or move it away"
        )


def _find_tokenizer(path: Optional[str], datamodule: Any) -> Optional[Tokenizer]:
    """``path``, else the tokenizer the datamodule's shards record when it is beside them."""
    if path is not None:
        return load_tokenizer(path)
    recorded = datamodule.tokenizer_identity() if isinstance(datamodule, RunData) else None
    return recorded.load() if recorded is not None else None
