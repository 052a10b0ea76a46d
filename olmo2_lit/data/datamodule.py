"""``TokenShardDataModule``: OLMo-format token shards -> deterministic, resumable batches.

The only place that knows about shards (DESIGN.md). Its position in the global data order is counted
in tokens and saved in Lightning checkpoints, so a resumed run sees exactly the batches an
uninterrupted one would (docs/data.md, "Resume").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.datasets import DataPosition, TrainBatches, ValBatches
from olmo2_lit.data.instances import InstanceIndex
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.data.sampler import epoch_end
from olmo2_lit.data.sources import TrainingSet, fingerprint_difference, open_shards

_STATE_VERSION = 1

# Lightning warns that an IterableDataset's __len__ may be wrong with several workers. Ours is exact: each
# worker builds only its own share of the micro-batches (datasets.py).
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


@dataclass
class PrepareSpec:
    """Shards that ``prepare_data()`` builds when ``output_dir`` has no ``manifest.json`` yet.

    A byte-level BPE of the datamodule's ``vocab_size`` is trained on the inputs unless
    ``tokenizer`` is given. Point ``train_sources`` at ``<output_dir>/train`` and ``val_paths`` at
    ``<output_dir>/val``.

    Attributes:
        output_dir: where ``prepare`` writes.
        inputs: what to tokenize; None: the embedded corpus, Python's standard library source.
        tokenizer: a tokenizer.json to use instead of training a BPE.
        max_input_bytes: a seeded sample of whole input files of about this many bytes.
        val_fraction: share of documents held out for validation.
        seed: seed of the sample and the split.
    """

    output_dir: str
    inputs: Optional[list[str]] = None
    tokenizer: Optional[str] = None
    max_input_bytes: Optional[int] = 6_000_000
    val_fraction: float = 0.05
    seed: int = 0


class TokenShardDataModule(L.LightningDataModule):
    """Fixed-length instances from OLMo-format token shards, in a global order fixed by the seed.

    Batches are dicts: ``input_ids`` (B, T) int64; ``labels`` (B, T) int64, next-token targets already
    shifted (``labels[:, -1] = -100``; all -100 for instances the instance filter masks); ``index`` (B,)
    int64, global instance ids; and with ``document_masking``, ``doc_lens`` (B, max_docs) int32.

    Args:
        vocab_size: the tokenizer's vocab size (dolma2: 100278). Shard sidecars must agree; it also
            fixes the dtype unless ``dtype`` is set.
        train_sources: the training mixture, each source a list of shard paths and a weight.
        val_paths: held-out shard files, directories or globs for the validation dataloader.
        test_paths: held-out shards for ``olmo2-lit test`` and ``predict``; None uses ``val_paths``.
        sequence_length: tokens per instance (OLMo 2: 4096).
        global_batch_size: instances per optimizer step over all ranks (OLMo 2 7B: 1024).
        micro_batch_size: instances per rank per forward pass.
        val_batch_size: instances per rank per validation step (default: ``micro_batch_size``).
        seed: seed of the global order; the order depends on nothing else but the shards and the epoch.
        num_workers: DataLoader worker processes; the batch sequence is the same for any value.
        dtype: token dtype of shards without a sidecar (OLMo's files: uint32); None derives it from
            ``vocab_size`` as OLMo does.
        eos_token_id: EOS id, needed for ``document_masking`` when the shards have no sidecar
            (dolma2: 100257); when set, sidecars must agree.
        document_masking: emit ``doc_lens`` so attention never crosses an EOS (OLMo 2 pretraining did not
            use this, OLMO2.md §4.4).
        instance_filter: mask the labels of instances with >= 32 repeats of a 1-13 token n-gram
            (OLMo 2's instance filter, OLMO2.md §3.2).
        ignore_fingerprint_mismatch: resume even if the shard set differs from the checkpoint's.
        prepare_if_missing: build shards with ``prepare`` in ``prepare_data()`` if they are not there.
        pin_memory: pin batches in page-locked memory (for CUDA).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        train_sources: Optional[list[DataSource]] = None,
        val_paths: Optional[list[str]] = None,
        test_paths: Optional[list[str]] = None,
        sequence_length: int = 4096,
        global_batch_size: int = 512,
        micro_batch_size: int = 4,
        val_batch_size: Optional[int] = None,
        seed: int = 0,
        num_workers: int = 0,
        dtype: Optional[Literal["uint8", "uint16", "uint32", "uint64"]] = None,
        eos_token_id: Optional[int] = None,
        document_masking: bool = False,
        instance_filter: bool = False,
        ignore_fingerprint_mismatch: bool = False,
        prepare_if_missing: Optional[PrepareSpec] = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if sequence_length < 2:
            raise ValueError(f"sequence_length must be >= 2, got {sequence_length}")
        # world size 1 until setup("fit") knows the real one; validates global % micro now
        self._plan = BatchPlan(sequence_length=sequence_length, global_batch=global_batch_size,
                               micro_batch=micro_batch_size)
        self._vocab_size = vocab_size
        self._sequence_length = sequence_length
        self.train_sources = list(train_sources or [])
        self.val_paths = list(val_paths or [])
        self.test_paths = list(test_paths) if test_paths is not None else self.val_paths
        self.val_batch_size = val_batch_size or micro_batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.dtype = dtype
        self.eos_token_id = eos_token_id
        self.document_masking = document_masking
        self.instance_filter = instance_filter
        self.ignore_fingerprint_mismatch = ignore_fingerprint_mismatch
        self.prepare_if_missing = prepare_if_missing
        self.pin_memory = pin_memory
        self.position = DataPosition()
        self._tokens_seen = 0
        self._train: Optional[TrainingSet] = None
        self._val: Optional[InstanceIndex] = None
        self._test: Optional[InstanceIndex] = None
        self._pending_state: Optional[dict[str, Any]] = None

    # ---- properties other components read -----------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocab size (the model pads it, OLMO2.md §1.5)."""
        return self._vocab_size

    @property
    def sequence_length(self) -> int:
        """Tokens per instance."""
        return self._sequence_length

    @property
    def batch_plan(self) -> BatchPlan:
        """Global batch, micro batch, world size, accumulation and tokens per optimizer step.

        The one owner of these numbers (``olmo2_lit.data.batch_plan``); the world size is right once
        ``setup("fit")`` has run, which Lightning does before the module's and callbacks' ``setup``.
        """
        return self._plan

    @property
    def tokens_seen(self) -> int:
        """Training tokens consumed so far by all ranks, over all epochs: the run's one token counter.

        Advanced as the loop takes each micro-batch and saved in checkpoints; the LR schedule and the
        throughput callback derive their counts from it.
        """
        return self._tokens_seen

    def instance_location(self, index: int) -> tuple[str, int]:
        """Where training instance ``index`` (a value of ``batch["index"]``) lives: shard path, first token."""
        if self._train is None:
            self.setup("fit")
        shard, start = self._train.index.locate(index)
        return shard.path, start

    # ---- Lightning hooks --------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Run ``prepare`` once per node when ``prepare_if_missing`` is set and its manifest is absent."""
        spec = self.prepare_if_missing
        if spec is None:
            return
        # The only place the reader side calls the writer side.
        from olmo2_lit.prepare.corpus import STDLIB_CORPUS
        from olmo2_lit.prepare.prepare import MANIFEST, prepare

        if (Path(spec.output_dir) / MANIFEST).exists():
            return
        inputs = spec.inputs or [STDLIB_CORPUS]
        rank_zero_info(f"{spec.output_dir}: no {MANIFEST}; preparing shards from {inputs}")
        prepare(inputs=inputs, output_dir=spec.output_dir, tokenizer=spec.tokenizer, vocab_size=self._vocab_size,
                val_fraction=spec.val_fraction, max_input_bytes=spec.max_input_bytes, seed=spec.seed, num_workers=1)

    def setup(self, stage: str) -> None:
        """Open and validate the shards (every rank); applies a checkpoint's state loaded before."""
        if stage == "fit" and self._train is None:
            if not self.train_sources:
                raise ValueError("train_sources is empty: give at least one source of shard paths")
            self._train = TrainingSet.open(self.train_sources, sequence_length=self._sequence_length,
                                        vocab_size=self._vocab_size, dtype=self.dtype, eos_token_id=self.eos_token_id)
            self.eos_token_id = self._train.eos_token_id
            if epoch_end(self._train.epoch_size, self._plan.global_batch) == 0:
                raise ValueError(f"{self.train_sources}: {self._train.epoch_size} instances per epoch, fewer than one "
                                 f"global batch of {self._plan.global_batch}")
            rank_zero_info(self._train.describe())
            self._plan = self._plan.with_world_size(self._world_size())
        if stage in ("fit", "validate") and self._val is None and self.val_paths:
            self._val = self._open_held_out(self.val_paths)
        if stage in ("test", "predict") and self._test is None and self.test_paths:
            self._test = self._open_held_out(self.test_paths)
        if self.document_masking and self.eos_token_id is None:
            raise ValueError("document_masking needs the EOS id and these shards have no sidecar: set eos_token_id "
                             "(dolma2: 100257)")
        if self._pending_state is not None and self._train is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None

    def train_dataloader(self) -> DataLoader:
        """This rank's micro-batches from the current position to the end of the data epoch."""
        if self._train is None:
            self.setup("fit")
        m = self._train
        dataset = TrainBatches(
            index=m.index, ranges=m.ranges, counts=m.counts, seed=self.seed, position=self.position,
            global_batch=self._plan.global_batch, micro_batch=self._plan.micro_batch, rank=self._rank(),
            world_size=self._world_size(), eos_token_id=self.eos_token_id if self.document_masking else None,
            instance_filter=self.instance_filter)
        return self._loader(dataset)

    def val_dataloader(self) -> DataLoader | list:
        """The held-out instances in order, strided over ranks; empty when ``val_paths`` is not set."""
        if not self.val_paths:
            return []
        if self._val is None:
            self.setup("validate")
        return self._held_out_loader(self._val)

    def test_dataloader(self) -> DataLoader | list:
        """Like the validation dataloader, over ``test_paths``."""
        if not self.test_paths:
            return []
        if self._test is None:
            self.setup("test")
        return self._held_out_loader(self._test)

    predict_dataloader = test_dataloader

    def _open_held_out(self, paths: list[str]) -> InstanceIndex:
        shards, self.eos_token_id = open_shards(paths, vocab_size=self._vocab_size, dtype=self.dtype,
                                                eos_token_id=self.eos_token_id)
        index = InstanceIndex(shards, sequence_length=self._sequence_length)
        if len(index) < self.val_batch_size * self._world_size():
            rank_zero_warn(f"{paths}: {len(index)} held-out instances, fewer than one batch")
        return index

    def _held_out_loader(self, index: InstanceIndex) -> DataLoader:
        dataset = ValBatches(index=index, micro_batch=self.val_batch_size, rank=self._rank(),
                             world_size=self._world_size(),
                             eos_token_id=self.eos_token_id if self.document_masking else None)
        return self._loader(dataset)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the training micro-batch the loop is about to use (prefetched ones are not counted yet)."""
        if self.trainer is not None and self.trainer.training:
            self._advance(batch["input_ids"].shape[0] * self._world_size())
        return batch

    # ---- position and checkpoint state -------------------------------------------------------------

    def skip_tokens(self, tokens: int) -> None:
        """Jump the position forward by ``tokens`` (rounded up to a whole micro-batch on every rank).

        For rolling back past bad data. It takes effect when the train dataloader is next iterated (a new
        epoch, or a run resumed from a checkpoint saved after the jump).
        """
        if tokens < 0:
            raise ValueError(f"skip_tokens needs tokens >= 0, got {tokens}")
        if self._train is None:
            raise RuntimeError("skip_tokens needs the shards open: call setup('fit') first")
        step = self._plan.instances_per_micro_step
        self._advance(math.ceil(tokens / self._sequence_length / step) * step)

    def _advance(self, instances: int) -> None:
        self._tokens_seen += instances * self._sequence_length
        self.position.instances += instances
        self._roll_over()

    def _roll_over(self) -> None:
        """Start the next data epoch once the last whole global batch of this one is consumed."""
        end = epoch_end(self._train.epoch_size, self._plan.global_batch)
        while self.position.instances >= end:
            self.position.epoch += 1
            self.position.instances -= end

    def state_dict(self) -> dict[str, Any]:
        """Position (epoch, tokens into it), seed and the shard-set fingerprint, for the checkpoint."""
        if self._train is None:
            return {}
        return {"version": _STATE_VERSION, "epoch": self.position.epoch,
                "tokens": self.position.instances * self._sequence_length, "total_tokens": self._tokens_seen,
                "seed": self.seed, "sequence_length": self._sequence_length,
                "fingerprint": self._train.fingerprint,
                "shards": self._train.shard_list}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position (applied at ``setup`` if the shards are not open yet)."""
        if not state_dict:
            return
        if self._train is None:
            self._pending_state = dict(state_dict)
        else:
            self._apply_state(state_dict)

    def _apply_state(self, state: dict[str, Any]) -> None:
        if state["fingerprint"] != self._train.fingerprint:
            message = fingerprint_difference(state["shards"], self._train.shard_list)
            if not self.ignore_fingerprint_mismatch:
                raise ValueError(f"the checkpoint's data position is for another shard set: {message}. Set "
                                 "ignore_fingerprint_mismatch=True to resume at the same token position anyway")
            rank_zero_warn(f"resuming on a different shard set ({message}); ignore_fingerprint_mismatch is set")
        if state["seed"] != self.seed:
            rank_zero_warn(f"the checkpoint's data seed {state['seed']} replaces the configured seed {self.seed}")
            self.seed = state["seed"]
        if state["sequence_length"] != self._sequence_length:
            rank_zero_warn(f"sequence_length changed from {state['sequence_length']} to {self._sequence_length}; "
                           "resuming at the same token position of a different instance set")
        step = self._plan.instances_per_micro_step
        instances = state["tokens"] // self._sequence_length
        aligned = instances // step * step
        if aligned != instances:
            rank_zero_warn(f"the saved position ({instances} instances) is not a multiple of micro_batch_size x world "
                           f"size = {step}; replaying {instances - aligned} instances")
        # in place: a train dataset built earlier holds this object
        self.position.epoch, self.position.instances = state["epoch"], aligned
        self._tokens_seen = state["total_tokens"] - (instances - aligned) * self._sequence_length
        self._roll_over()

    # ---- helpers --------------------------------------------------------------------------------

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _loader(self, dataset) -> DataLoader:
        # persistent_workers stays off: workers must copy the position afresh at every iter().
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=False)
