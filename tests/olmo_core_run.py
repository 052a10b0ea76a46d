"""Train a tiny OLMo 2 with ai2-olmo-core 3.0.0's own ``Trainer`` + ``TransformerTrainModule`` (CPU, fp32).

The reference side of the whole-run comparisons (tests/training/test_olmo_core_run.py) and of the
checkpoint conversions (tests/weights/test_olmo_core_convert.py). Run as a script, one process per rank::

    python tests/olmo_core_run.py SPEC.json                          # 1 rank
    python -m torch.distributed.run --nproc_per_node 2 tests/olmo_core_run.py SPEC.json

SPEC (JSON) names the shards, the tiny model's sizes, the recipe and where to write; see :class:`Spec`.
The process writes ``metrics.json`` (per optimizer step: CE, z-loss, grad norm, LR, step skipped) and
``final.pt`` (the model's weights under *our* names) into ``out``, and OLMo-core's own checkpoints into
``out/save`` at ``save_steps``.

Everything here is OLMo-core's running code; the one patch (:func:`_cpu_document_attention`) gives its
flash-attention backend a CPU kernel, because OLMo-core runs intra-document masking only through
flash-attn (its ``torch`` backend refuses ``cu_doc_lens``) and flash-attn has no CPU build.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

#: OLMo-core's parameter name <-> ours, where they differ (the rest are equal). The converters read the
#: same table (``olmo2_lit/weights/olmo_core.py``); it is repeated here so the reference side does not
#: import the code under test.
_OURS = {"lm_head.norm.weight": "norm.weight", "lm_head.w_out.weight": "lm_head.weight"}
_THEIRS = {v: k for k, v in _OURS.items()}


@dataclass
class Spec:
    """One OLMo-core run (all paths absolute)."""

    shards: list[str]
    out: str
    init: Optional[str] = None  # a safetensors file of our weights (``save_native``); None: load_from
    load_from: Optional[str] = None  # an OLMo-core step directory to continue
    steps: int = 50  # the schedule's length (OLMo-core: the trainer's max_duration)
    stop_at: Optional[int] = None  # stop early (OLMo-core's hard_stop), e.g. right after a save
    save_steps: list[int] = field(default_factory=list)
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 4
    mlp_hidden: int = 64
    vocab_size: int = 256
    dtype: str = "uint16"
    eos_token_id: int = 0
    sequence_length: int = 64
    global_batch: int = 8  # instances
    micro_batch: int = 2  # instances per rank per forward
    seed: int = 0
    optimizer: str = "adamw"  # or "skip_step_adamw"
    optimizer_args: dict = field(default_factory=dict)  # e.g. SkipStepAdamW's rolling_interval_length
    lr: float = 4e-3
    warmup: int = 5
    max_grad_norm: float = 1.0
    z_loss: float = 1e-5
    instance_filter: bool = False
    document_masking: bool = False


def _cpu_document_attention(model) -> None:
    """Give ``model``'s attention OLMo-core's flash-attn backend, with a CPU ``flash_attn_varlen_func``.

    On CPU, OLMo-core builds its ``torch`` backend, which refuses ``cu_doc_lens``; flash-attn has no CPU
    build. So each block's backend becomes OLMo-core's ``FlashAttention2Backend`` (its own code: it
    flattens the batch to (B*T, heads, head_dim) and passes the cumulative document lengths), and the one
    flash-attn function it calls is SDPA run per document, causal within it (flash-attn's meaning).
    """
    import types

    import torch.nn.functional as F
    from olmo_core.nn.attention import AttentionBackendName, backend, flash_attn_api

    def varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, dropout_p, softmax_scale, causal, window_size):
        assert dropout_p == 0 and window_size == (-1, -1) and torch.equal(cu_q, cu_k)
        out = torch.empty_like(q)
        bounds = cu_q.tolist()
        for a, b in zip(bounds[:-1], bounds[1:]):
            qd, kd, vd = (t[a:b].transpose(0, 1) for t in (q, k, v))  # (heads, len, head_dim)
            att = F.scaled_dot_product_attention(qd, kd, vd, is_causal=causal, scale=softmax_scale)
            out[a:b] = att.transpose(0, 1)
        return out

    flash_attn_api.flash_attn_2 = types.SimpleNamespace(flash_attn_varlen_func=varlen)
    backend.has_flash_attn_2 = lambda: True
    for block in model.blocks.values():
        attention = block.attention
        attention.backend = AttentionBackendName.flash_2.build(
            head_dim=attention.head_dim, n_heads=attention.n_heads, n_kv_heads=attention.n_kv_heads
        )


def _model(spec: Spec):
    from olmo_core.nn.attention import AttentionBackendName
    from olmo_core.nn.feed_forward import FeedForwardConfig
    from olmo_core.nn.transformer import TransformerBlockType, TransformerConfig

    config = TransformerConfig.llama_like(
        d_model=spec.d_model,
        vocab_size=spec.vocab_size,
        n_layers=spec.n_layers,
        n_heads=spec.n_heads,
        block_name=TransformerBlockType.reordered_norm,
        qk_norm=True,
        rope_theta=500_000,
        layer_norm_eps=1e-6,
        feed_forward=FeedForwardConfig(hidden_size=spec.mlp_hidden, bias=False),
        attn_backend=AttentionBackendName.torch,
    )
    model = config.build(init_device="cpu")
    if spec.document_masking:
        _cpu_document_attention(model)
    return model


def _load_initial_weights(model, path: str) -> None:
    """Our weights into OLMo-core's model, after ``TransformerTrainModule`` has (re-)initialized it."""
    from safetensors.torch import load_file

    ours = load_file(path)
    model.load_state_dict({_THEIRS.get(k, k): v for k, v in ours.items()}, strict=True)


def _data_loader(spec: Spec, work: Path):
    from olmo_core.data import DataCollator, NumpyDataLoaderBase, NumpyFSLDataset
    from olmo_core.data.numpy_dataset import InstanceFilterConfig
    from olmo_core.distributed.utils import get_rank, get_world_size

    dataset = NumpyFSLDataset(
        *spec.shards,
        sequence_length=spec.sequence_length,
        pad_token_id=spec.vocab_size - 1,
        eos_token_id=spec.eos_token_id,
        vocab_size=spec.vocab_size,
        dtype=getattr(np, spec.dtype),
        generate_doc_lengths=spec.document_masking,
        instance_filter_config=InstanceFilterConfig() if spec.instance_filter else None,
    )
    dataset.work_dir = work
    return NumpyDataLoaderBase.wrap_numpy_dataset(
        dataset,
        global_batch_size=spec.global_batch * spec.sequence_length,
        collator=DataCollator(pad_token_id=spec.vocab_size - 1),
        work_dir=work,
        seed=spec.seed,
        dp_world_size=get_world_size(),
        dp_rank=get_rank(),
        fs_local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def _optim(spec: Spec):
    from olmo_core.optim import AdamWConfig, OptimGroupOverride, SkipStepAdamWConfig

    cls = {"adamw": AdamWConfig, "skip_step_adamw": SkipStepAdamWConfig}[spec.optimizer]
    return cls(
        lr=spec.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        weight_decay=0.1,
        # OLMo 2: no weight decay on the embedding (OLMo-core's official OLMo 2 scripts)
        group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
        **spec.optimizer_args,
    )


def _ddp():
    from olmo_core.distributed.parallel import DataParallelType
    from olmo_core.train.train_module import TransformerDataParallelConfig

    return TransformerDataParallelConfig(name=DataParallelType.ddp)


def _callbacks(spec: Spec, records: dict):
    from olmo_core.train.callbacks import Callback, CheckpointerCallback

    class Record(Callback):
        """Each optimizer step's metrics, reduced over ranks, as the trainer logs them."""

        def log_metrics(self, step, metrics):
            records[step] = {k: float(v) for k, v in metrics.items()}

    class SaveAt(Callback):
        """A checkpoint after exactly the steps in ``save_steps`` (synchronously)."""

        def post_step(self):
            if self.step in spec.save_steps:
                self.trainer.save_checkpoint()

    # the default checkpointer would also save at the end of training; off, SaveAt decides
    return {"record": Record(), "save_at": SaveAt(), "checkpointer": CheckpointerCallback(enabled=False)}


def run(spec: Spec) -> None:
    from olmo_core.distributed.utils import get_rank
    from olmo_core.optim import CosWithWarmup
    from olmo_core.train import Duration, TrainerConfig, prepare_training_environment
    from olmo_core.train.train_module import TransformerTrainModule

    prepare_training_environment(seed=spec.seed, backend="gloo" if "WORLD_SIZE" in os.environ else None)
    out = Path(spec.out)
    module = TransformerTrainModule(
        _model(spec),
        _optim(spec),
        rank_microbatch_size=spec.micro_batch * spec.sequence_length,
        max_sequence_length=spec.sequence_length,
        z_loss_multiplier=spec.z_loss,
        max_grad_norm=spec.max_grad_norm,
        scheduler=CosWithWarmup(warmup_steps=spec.warmup, alpha_f=0.1),
        dp_config=_ddp() if "WORLD_SIZE" in os.environ else None,
        device=torch.device("cpu"),
    )
    if spec.init is not None:
        _load_initial_weights(module.model, spec.init)
    records: dict[int, dict[str, float]] = {}
    trainer = TrainerConfig(
        save_folder=str(out / "save"),
        work_dir=str(out / "work"),
        save_overwrite=True,
        device="cpu",
        max_duration=Duration.steps(spec.steps),
        hard_stop=Duration.steps(spec.stop_at) if spec.stop_at else None,
        metrics_collect_interval=1,
        cancel_check_interval=10_000,
        load_strategy="never",
        callbacks=_callbacks(spec, records),
    ).build(module, _data_loader(spec, out / "work"))
    if spec.load_from is not None:
        trainer.load_checkpoint(spec.load_from)
    trainer.fit()
    if get_rank() == 0:
        weights = {_OURS.get(k, k): v.detach().clone() for k, v in module.model.state_dict().items()}
        torch.save(weights, out / "final.pt")
        (out / "metrics.json").write_text(json.dumps(records))


if __name__ == "__main__":
    run(Spec(**json.loads(Path(sys.argv[1]).read_text())))
