"""In-loop downstream evaluation by ranked classification, as OLMo 2 tracked it (OLMO2.md §7.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer

from olmo2_lit.data.contract import RunData
from olmo2_lit.eval.metrics import task_metrics
from olmo2_lit.eval.scoring import Instance, length_batches, score_instances, tokenize_task
from olmo2_lit.eval.tasks import load_task
from olmo2_lit.shard_format.tokenizer import load_tokenizer
from olmo2_lit.train import metrics as M


@dataclass
class TaskSpec:
    """One task to evaluate.

    Attributes:
        path: an oe-eval task directory (``.../oe_eval_tasks/arc_easy/rc_5shot``) or one of our ``.jsonl``
            files (format: ``olmo2_lit/eval/tasks.py``, docs/eval.md).
        name: name in the logs; default: ``<task>_<variant>`` or the file's stem.
        primary_metric: override the task's headline metric (acc | len_norm | pmi_dc | bpb).
        limit: evaluate only the first this many questions of the file.
    """

    path: str
    name: Optional[str] = None
    primary_metric: Optional[str] = None
    limit: Optional[int] = None


class DownstreamEval(Callback):
    """Every ``every_n_steps`` optimizer steps, score each task's choices on all ranks, gather, and log
    ``downstream/<task>/<metric>`` (acc, len_norm, pmi_dc, ce_loss, bpb, and ``primary``; an oe-eval task
    read for bpb, which keeps only the gold continuations, logs ce_loss, bpb and ``primary``).

    Args:
        tasks: the tasks.
        tokenizer: the tokenizer.json the model is trained with; default: the one the training or
            held-out shards record (``olmo2-lit prepare`` shards).
        every_n_steps: evaluate after every this many optimizer steps.
        batch_size: queries per forward pass (batched by length).
        truncate: drop the oldest context tokens of a request longer than the model's context, as OLMo
            does; False makes such a request an error.
        bos_token_id: prepend this token to every context (OLMo 2's dolma2 has none).
    """

    def __init__(
        self,
        *,
        tasks: list[TaskSpec],
        tokenizer: Optional[str] = None,
        every_n_steps: int = 1000,
        batch_size: int = 16,
        truncate: bool = True,
        bos_token_id: Optional[int] = None,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"DownstreamEval: every_n_steps must be >= 1, got {every_n_steps}")
        self.specs = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in tasks]
        self.tokenizer = tokenizer
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self.truncate = truncate
        self.bos_token_id = bos_token_id
        self.instances: dict[str, list[Instance]] = {}
        self.primary: dict[str, str] = {}
        self.gold_only: set[str] = set()  # tasks read for bpb alone: no accuracies, no " " prompt
        self.results: dict[int, dict[str, dict[str, float]]] = {}  # step -> task -> metrics
        self._last_step = -1

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.instances:
            return
        path = self.tokenizer
        if path is None:
            data = trainer.datamodule
            recorded = data.tokenizer_identity() if isinstance(data, RunData) else None
            found = recorded.path if recorded is not None else None
            if found is None:
                raise ValueError(
                    "DownstreamEval: the shards do not record their tokenizer; "
                    "set tokenizer: <tokenizer.json>"
                )
            path = str(found)
        tok = load_tokenizer(path)
        n, vocab = tok.get_vocab_size(with_added_tokens=True), pl_module.config.vocab_size
        if n > vocab:
            raise ValueError(
                f"DownstreamEval: {path} has {n} tokens, more than the model's vocab_size {vocab}; "
                "set tokenizer to the one the model is trained with"
            )
        for spec in self.specs:
            task = load_task(spec.path, name=spec.name, primary_metric=spec.primary_metric, limit=spec.limit)
            self.instances[task.name] = tokenize_task(
                task,
                tok,
                context_length=pl_module.config.max_sequence_length,
                truncate=self.truncate,
                bos_token_id=self.bos_token_id,
            )
            self.primary[task.name] = task.primary_metric
            if task.gold_only:
                self.gold_only.add(task.name)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx
    ) -> None:
        step = trainer.global_step
        if step == 0 or step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        self.evaluate(trainer, pl_module)

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, dict[str, float]]:
        """Score every task now; returns (and logs, on rank 0) task -> metric -> value."""
        was_training = pl_module.training
        pl_module.eval()
        rank, world = trainer.global_rank, trainer.world_size
        results = {}
        for name, instances in self.instances.items():
            batches = length_batches([len(x.query) for x in instances], self.batch_size)
            mine = batches[rank::world]
            # Every rank runs the same number of forward passes (FSDP needs them in lockstep).
            n_rounds = -(-len(batches) // world)
            mine += [batches[-1]] * (n_rounds - len(mine))
            accuracies = name not in self.gold_only
            ll, dc = score_instances(
                pl_module.model, instances, batches=mine, with_domain_conditional=accuracies
            )
            if world > 1 and dist.is_available() and dist.is_initialized():
                gathered: list = [None] * world
                dist.all_gather_object(gathered, (ll, dc))
                ll, dc = {}, {}
                for part_ll, part_dc in gathered:
                    ll.update(part_ll)
                    dc.update(part_dc)
            metrics = task_metrics(instances, ll, dc, accuracies=accuracies)
            metrics["primary"] = metrics[self.primary[name]]
            results[name] = metrics
        pl_module.train(was_training)
        self.results[trainer.global_step] = results
        if trainer.is_global_zero:
            flat = {
                M.DOWNSTREAM.format(task=t, metric=m): v for t, ms in results.items() for m, v in ms.items()
            }
            for logger in trainer.loggers:
                logger.log_metrics(flat, step=trainer.global_step)
        return results
