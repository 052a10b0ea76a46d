"""``TokenShardDataModule``: OLMo-format token shards -> deterministic, resumable batches.

The only place that knows about shards (DESIGN.md). Its position in the global data order is counted
in tokens and saved in Lightning checkpoints, so a resumed run sees exactly the batches an
uninterrupted one would (docs/data.md, "Resume").
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.datasets import TrainBatches, ValBatches
from olmo2_lit.data.instances import InstanceIndex, chunk_size
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.data.order_file import EpochOrders
from olmo2_lit.data.position import DataPosition, PositionTracker
from olmo2_lit.data.prepare_spec import PrepareSpec, prepare_if_missing
from olmo2_lit.data.resume import check_converted_batch, check_saved_data, saved_seed
from olmo2_lit.data.sampler import epoch_end
from olmo2_lit.data.setting_checks import check_data_settings
from olmo2_lit.data.sources import TrainingSet, open_shards
from olmo2_lit.errors import ConfigError, DataError
from olmo2_lit.shard_format.identity import TokenizerIdentity, recorded_tokenizer

# Lightning warns that an IterableDataset's __len__ may be wrong with several workers. Ours is exact: each
# worker builds only its own share of the micro-batches (datasets.py).
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")

_STATE_VERSION = 1


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
        seed: seed of the global order; the order depends on nothing else but the shards and the epoch
            (OLMo 2 1B/7B/13B: 6198, the 32B: 34521).
        order: whose epoch order to reproduce, instance for instance: ``olmo``, the OLMo trainer's
            (``PCG64(seed + epoch)``, first epoch 0; the 1B, 7B and 13B), or ``olmo_core``, OLMo-core's
            ``NumpyFSLDataLoader`` (epochs from 1, chunked with ``max_target_sequence_length``; the 32B).
        max_target_sequence_length: OLMo-core's: cut each shard at multiples of this, and shuffle runs of
            ``max_target_sequence_length // sequence_length`` adjacent instances together (OLMo-core's
            OLMo 2 scripts: 8192). A multiple of ``sequence_length``; only with ``order: olmo_core``.
        order_dir: where each epoch's order file is built once per node and shared by every process;
            None: ``<trainer.default_root_dir>/data_order``, or in memory without a trainer.
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
        order: Literal["olmo", "olmo_core"] = "olmo",
        max_target_sequence_length: Optional[int] = None,
        order_dir: Optional[str] = None,
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
            raise ConfigError(f"sequence_length must be >= 2, got {sequence_length}")
        # world size 1 until setup("fit") knows the real one; validates global % micro now
        self._plan = BatchPlan(
            sequence_length=sequence_length, global_batch=global_batch_size, micro_batch=micro_batch_size
        )
        self._vocab_size = vocab_size
        self.train_sources = list(train_sources or [])
        self.val_paths = list(val_paths or [])
        self.test_paths = list(test_paths) if test_paths is not None else self.val_paths
        check_data_settings(
            vocab_size=vocab_size,
            seed=seed,
            eos_token_id=eos_token_id,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
        )
        self.val_batch_size = val_batch_size or micro_batch_size
        self.seed = seed
        self.order, self.max_target_sequence_length, self.order_dir = (
            order,
            max_target_sequence_length,
            order_dir,
        )
        self._chunk_size = chunk_size(sequence_length, max_target_sequence_length)  # raises naming both
        if order != "olmo_core" and max_target_sequence_length is not None:
            raise ValueError(
                f"max_target_sequence_length {max_target_sequence_length} is OLMo-core's and order "
                f"{order!r} has none: set order: olmo_core or max_target_sequence_length: null"
            )
        self.num_workers = num_workers
        self.dtype = dtype
        self.eos_token_id = eos_token_id
        self.document_masking = document_masking
        self.instance_filter = instance_filter
        self.ignore_fingerprint_mismatch = ignore_fingerprint_mismatch
        self.prepare_if_missing = prepare_if_missing
        self.pin_memory = pin_memory
        self._tracker: Optional[PositionTracker] = None  # made at setup("fit")
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
        """Tokens per instance (the batch plan's)."""
        return self._plan.sequence_length

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
        return self._tracker.tokens_seen if self._tracker is not None else 0

    @property
    def position(self) -> DataPosition:
        """The data epoch and the instances of its order consumed by all ranks (``setup("fit")`` first)."""
        return self._tracker.position if self._tracker is not None else DataPosition()

    def instance_location(self, index: int) -> tuple[str, int]:
        """Where training instance ``index`` (a value of ``batch["index"]``) lives: shard path, first
        token."""
        if self._train is None:
            self.setup("fit")
        shard, start = self._train.index.locate(index)
        return shard.path, start

    def tokenizer_identity(self) -> Optional[TokenizerIdentity]:
        """The tokenizer recorded by the first shard sidecar of the training sources, else of
        ``val_paths`` and ``test_paths``, with its tokenizer.json when it is beside the shards (where
        ``prepare`` puts it) and matches; None for shards without sidecars (OLMo's own)."""
        train = [str(path) for source in self.train_sources for path in source.paths]
        return recorded_tokenizer(train + self.val_paths + self.test_paths)

    # ---- Lightning hooks --------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Run ``prepare`` once per node when ``prepare_if_missing`` is set, its manifest is absent, and
        some training source reads its ``output_dir``."""
        if self.prepare_if_missing is not None:
            prepare_if_missing(self.prepare_if_missing, self.train_sources, vocab_size=self._vocab_size)

    def setup(self, stage: str) -> None:
        """Open and validate the shards (every rank); applies a checkpoint's state loaded before."""
        if stage == "fit" and self._train is None:
            if not self.train_sources:
                raise ConfigError("train_sources is empty: give at least one source of shard paths")
            self._train = TrainingSet.open(
                self.train_sources,
                sequence_length=self.sequence_length,
                vocab_size=self._vocab_size,
                dtype=self.dtype,
                eos_token_id=self.eos_token_id,
                max_target_sequence_length=self.max_target_sequence_length,
            )
            self.eos_token_id = self._train.eos_token_id
            if epoch_end(self._train.epoch_size, self._plan.global_batch) == 0:
                raise DataError(
                    f"{self.train_sources}: {self._train.epoch_size} instances per epoch, fewer than one "
                    f"global batch of {self._plan.global_batch}"
                )
            rank_zero_info(self._train.describe())
            self._plan = self._plan.with_world_size(self._world_size())
            self._tracker = PositionTracker(plan=self._plan, epoch_size=self._train.epoch_size)
        if stage == "validate" and not self.val_paths:
            raise ConfigError("validate scores data.val_paths, which is empty; set it to held-out shards")
        if stage in ("test", "predict") and not self.test_paths:
            raise ConfigError(
                f"{stage} reads data.test_paths (default: data.val_paths), both empty; set one to held-out "
                "shards"
            )
        if stage in ("fit", "validate") and self._val is None and self.val_paths:
            self._val = self._open_held_out(self.val_paths)
        if stage in ("test", "predict") and self._test is None and self.test_paths:
            self._test = self._open_held_out(self.test_paths)
        if self.document_masking and self.eos_token_id is None:
            raise ConfigError(
                "document_masking needs the EOS id and these shards have no sidecar: set eos_token_id "
                "(dolma2: 100257)"
            )
        if self._pending_state is not None and self._tracker is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None

    def train_dataloader(self) -> DataLoader:
        """This rank's micro-batches from the current position to the end of the data epoch."""
        if self._train is None:
            self.setup("fit")
        m = self._train
        dataset = TrainBatches(
            index=m.index,
            ranges=m.ranges,
            counts=m.counts,
            seed=self.seed,
            position=self._tracker.position,
            plan=self._plan,
            rank=self._rank(),
            eos_token_id=self.eos_token_id if self.document_masking else None,
            instance_filter=self.instance_filter,
            orders=self._epoch_orders(),
        )
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
        shards, self.eos_token_id = open_shards(
            paths, vocab_size=self._vocab_size, dtype=self.dtype, eos_token_id=self.eos_token_id
        )
        index = InstanceIndex(shards, sequence_length=self.sequence_length)
        if len(index) < self.val_batch_size * self._world_size():
            rank_zero_warn(f"{paths}: {len(index)} held-out instances, fewer than one batch")
        return index

    def _held_out_loader(self, index: InstanceIndex) -> DataLoader:
        dataset = ValBatches(
            index=index,
            micro_batch=self.val_batch_size,
            rank=self._rank(),
            world_size=self._world_size(),
            eos_token_id=self.eos_token_id if self.document_masking else None,
        )
        return self._loader(dataset)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the training micro-batch the loop is about to use (prefetched ones are not counted yet)."""
        if self.trainer is not None and self.trainer.training:
            self._tracker.advance(batch["input_ids"].shape[0] * self._world_size())
        return batch

    # ---- position and checkpoint state ------------------------------------------------------------

    def skip_tokens(self, tokens: int) -> None:
        """Jump the position forward by ``tokens`` (rounded up to a whole micro-batch on every rank).

        For rolling back past bad data. It takes effect when the train dataloader is next iterated (a new
        epoch, or a run resumed from a checkpoint saved after the jump).
        """
        if self._tracker is None:
            raise RuntimeError("skip_tokens needs the shards open: call setup('fit') first")
        self._tracker.skip_tokens(tokens)

    def state_dict(self) -> dict[str, Any]:
        """Position (epoch, tokens into it), seed and the shard-set fingerprint, for the checkpoint."""
        if self._tracker is None:
            return {}
        return {
            "version": _STATE_VERSION,
            **self._tracker.state_dict(),
            "seed": self.seed,
            "order": self.order,
            "max_target_sequence_length": self.max_target_sequence_length,
            "fingerprint": self._train.fingerprint,
            "shards": self._train.shard_list,
            # read by `convert to-hf` for the exported EOS/pad ids
            "eos_token_id": self.eos_token_id,
            "vocab_size": self._vocab_size,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position (applied at ``setup`` if the shards are not open yet)."""
        if not state_dict:
            return
        if self._tracker is None:
            self._pending_state = dict(state_dict)
        else:
            self._apply_state(state_dict)

    def _apply_state(self, state: dict[str, Any]) -> None:
        check_saved_data(
            state,
            self._train,
            order=self.order,
            max_target_sequence_length=self.max_target_sequence_length,
            ignore_fingerprint_mismatch=self.ignore_fingerprint_mismatch,
        )
        check_converted_batch(
            state,
            sequence_length=self.sequence_length,
            global_batch_tokens=self.batch_plan.global_batch * self.sequence_length,
        )
        self.seed = saved_seed(state, seed=self.seed, sequence_length=self.sequence_length)
        self._tracker.load_state_dict(state)

    # ---- helpers --------------------------------------------------------------------------------

    def _epoch_orders(self) -> EpochOrders:
        directory = self.order_dir
        if directory is None and getattr(self.trainer, "default_root_dir", None) is not None:
            directory = str(Path(self.trainer.default_root_dir) / "data_order")
        return EpochOrders(
            order=self.order,
            chunk_size=self._chunk_size,
            directory=directory,
            shards=self._train.fingerprint,
            sequence_length=self.sequence_length,
            max_target_sequence_length=self.max_target_sequence_length,
        )

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _loader(self, dataset) -> DataLoader:
        # persistent_workers stays off: workers must copy the position afresh at every iter().
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )
