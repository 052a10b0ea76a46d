"""Moving a run between OLMo-core's trainer and olmo2_lit (docs/interop.md).

An OLMo-core step directory (``stepN/``) holds ``model_and_optim/`` in torch distributed checkpoint (DCP)
format, with the model under ``model.<name>`` and the optimizer flattened per parameter
(``optim.state.<name>.<exp_avg|exp_avg_sq|step>``, ``optim.param_groups.<name>.<lr|weight_decay|...>``),
and ``train/rank<r>.pt`` with the step, the tokens seen and the data loader's position (read and written
in ``olmo_core_dcp.py``, without importing OLMo-core). This module maps names, groups and positions.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import torch

from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import CheckpointError
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.olmo_core_dcp import read_step_dir, write_step_dir
from olmo2_lit.weights.pretrained import load_lightning_checkpoint
from olmo2_lit.weights.resumable import resumable_checkpoint

#: OLMo-core's parameter name -> ours, where they differ (the rest are equal).
OURS = {"lm_head.norm.weight": "norm.weight", "lm_head.w_out.weight": "lm_head.weight"}
THEIRS = {v: k for k, v in OURS.items()}
#: Group hyperparameters that must agree between the two runs' parameter groups.
GROUP_FIELDS = ("weight_decay", "initial_lr", "betas", "eps")


# ------------------------------------------------------------------------------------------ the model


def model_config_from_shapes(
    weights: dict[str, torch.Tensor],
    *,
    preset: Optional[str],
    n_heads: Optional[int],
    vocab_size: Optional[int],
) -> ModelConfig:
    """Our ModelConfig for OLMo-core weights (our names): a preset whose shapes must match, or the sizes
    read from the shapes with ``n_heads`` (not in the shapes) given.

    Raises:
        CheckpointError: a preset whose shapes differ, naming the field and both values.
    """
    n_layers = len({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    rows, d_model = weights["embeddings.weight"].shape
    found = {
        "d_model": d_model,
        "n_layers": n_layers,
        "mlp_hidden": weights["blocks.0.feed_forward.w1.weight"].shape[0],
    }
    if preset is not None:
        config = ModelConfig(preset=preset).resolved()
        for field, value in found.items():
            if getattr(config, field) != value:
                raise CheckpointError(
                    f"architecture: {field} is {value} in the checkpoint and {getattr(config, field)} "
                    f"in preset {preset}"
                )
        if config.padded_vocab_size != rows:
            raise CheckpointError(
                f"architecture: the embedding has {rows} rows in the checkpoint and "
                f"{config.padded_vocab_size} in preset {preset}"
            )
        return config
    if n_heads is None:
        raise CheckpointError("the number of heads is not in the weights' shapes: pass --preset or --n_heads")
    kv = weights["blocks.0.attention.w_k.weight"].shape[0]
    return ModelConfig(
        **found,
        n_heads=n_heads,
        n_kv_heads=None if kv == d_model else kv // (d_model // n_heads),
        vocab_size=vocab_size or rows,
    ).resolved()


def our_groups(config: ModelConfig) -> list[list[str]]:
    """Our optimizer's parameter groups (names, in its state numbering) under OLMo 2's default groups."""
    from olmo2_lit.train.optim import (
        build_param_groups,
        olmo2_param_groups,
    )  # lazy: weights/ sits below train/

    with torch.device("meta"):
        model = Transformer(config)
    names = {id(p): n for n, p in model.named_parameters()}
    return [
        [names[id(p)] for p in group["params"]] for group in build_param_groups(model, olmo2_param_groups())
    ]


# ------------------------------------------------------------------------------- OLMo-core -> olmo2_lit


def lightning_checkpoint(
    state: dict[str, Any], trainer: dict[str, Any], config: ModelConfig
) -> dict[str, Any]:
    """A Lightning ``.ckpt`` dict that ``fit --ckpt_path`` resumes, from an OLMo-core step's state."""
    weights = {OURS.get(k[6:], k[6:]): v for k, v in state.items() if k.startswith("model.")}
    groups = our_groups(config)
    expected = {n for g in groups for n in g}
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise CheckpointError(f"architecture: parameters missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.device("meta"):
        shapes = {n: tuple(p.shape) for n, p in Transformer(config).named_parameters()}
    for name, tensor in weights.items():
        if tuple(tensor.shape) != shapes[name]:
            raise CheckpointError(
                f"architecture: {THEIRS.get(name, name)} is {tuple(tensor.shape)} in the checkpoint and "
                f"{shapes[name]} in the model config"
            )
    source = {}
    for name in expected:
        prefix = f"optim.state.{THEIRS.get(name, name)}."
        piece = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        source[name] = (THEIRS.get(name, name), _their_group(state, name), piece)
    optimizer = grouped_optimizer_state(groups, source, fields=GROUP_FIELDS, where="the checkpoint")
    return _assemble(weights, optimizer, trainer, config)


def grouped_optimizer_state(
    groups: list[list[str]], source: dict[str, tuple[str, dict, dict]], *, fields: tuple[str, ...], where: str
) -> dict[str, Any]:
    """Our optimizer state dict, in our ``groups`` (:func:`our_groups`), from another trainer's state.

    Args:
        groups: our parameter names per group, in our optimizer's order.
        source: our name -> (its name there, the hyperparameters of its group there, its state).
        fields: group hyperparameters that must agree within each of our groups.
        where: the checkpoint, for the messages.

    Raises:
        CheckpointError: parameters of one of our groups with different ``fields``, or an embedding that
            decays, naming the field, the parameters and both values.
    """
    state: dict[int, dict] = {}
    param_groups = []
    for names in groups:
        first_name, first, _ = source[names[0]]
        for name in names:
            theirs, group, piece = source[name]
            for field in fields:
                if group.get(field) != first.get(field):
                    raise CheckpointError(
                        f"optimizer param groups: {field} is {group.get(field)} for {theirs} and "
                        f"{first.get(field)} for {first_name}; olmo2_lit's default groups (no decay on the "
                        "embedding only) put them in one group"
                    )
            state[len(state)] = piece
        param_groups.append({**first, "params": list(range(len(state) - len(names), len(state)))})
    param_groups[0]["name"] = "default"
    for i, group in enumerate(param_groups[1:]):
        group["name"] = f"group{i}"
    if param_groups[-1]["weight_decay"] != 0.0:
        raise CheckpointError(
            f"optimizer param groups: weight_decay of {source[groups[-1][0]][0]} is "
            f"{param_groups[-1]['weight_decay']} in {where} and 0.0 in olmo2_lit's default groups"
        )
    return {"state": state, "param_groups": param_groups}


def _their_group(state: dict[str, Any], our_name: str) -> dict[str, Any]:
    prefix = f"optim.param_groups.{THEIRS.get(our_name, our_name)}."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _assemble(weights, optimizer, trainer, config) -> dict[str, Any]:
    step = int(trainer["global_step"])
    loader = trainer["data_loader"]
    data = {
        "version": 1,
        "epoch": loader["epoch"] - 1,  # OLMo-core numbers data epochs from 1
        "tokens": loader["tokens_processed"],
        "total_tokens": int(trainer["global_train_tokens_seen"]),
        "seed": loader["seed"],
        "sequence_length": loader["sequence_length"],
        "order": "olmo_core",
        "max_target_sequence_length": loader["max_target_sequence_length"],
        # our shard-set fingerprint is unknown here; resume checks what it can (data/resume.py)
        "fingerprint": None,
        "shards": None,
        "olmo_core_fingerprint": loader["dataset_fingerprint"],
        "global_batch_tokens": loader["tokens_processed"] // max(loader["batches_processed"], 1)
        if loader["batches_processed"]
        else int(trainer["global_train_tokens_seen"]) // max(step, 1),
        "eos_token_id": None,
        "vocab_size": config.vocab_size,
    }
    return resumable_checkpoint(weights, optimizer, config, step=step, data=data)


# ------------------------------------------------------------------------------- olmo2_lit -> OLMo-core


def olmo_core_fingerprint(
    shards: list[list],
    *,
    vocab_size: int,
    pad_token_id: int,
    eos_token_id: int,
    dtype: str,
    max_target_sequence_length: Optional[int],
) -> str:
    """OLMo-core's ``NumpyFSLDataset.fingerprint`` (v2.0) of our shard list: class, token ids, dtype, then
    each file's base name and size in bytes."""
    h = hashlib.sha256()
    h.update(b"class=NumpyFSLDataset")
    for name, value in (
        ("vocab_size", vocab_size),
        ("pad_token_id", pad_token_id),
        ("eos_token_id", eos_token_id),
        ("dtype", f"<class 'numpy.{dtype}'>"),
        ("max_target_sequence_length", max_target_sequence_length),
        ("bos_token_id", None),
    ):
        h.update(f"{name}={value},".encode())
    itemsize = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    for _, name, num_tokens, _ in shards:
        h.update(f"path={os.path.basename(name)},size={num_tokens * itemsize},".encode())
    return h.hexdigest()


def olmo_core_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The flat DCP state OLMo-core's ``TransformerTrainModule`` loads, from a Lightning ``.ckpt`` dict."""
    config = ModelConfig.from_dict(ckpt["olmo2_lit"]["model_config"]).resolved()
    weights = {k[6:]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    names = [n for g in our_groups(config) for n in g]
    optimizer = ckpt["optimizer_states"][0]
    out: dict[str, Any] = {f"model.{THEIRS.get(k, k)}": v for k, v in weights.items()}
    step_lr = ckpt["olmo2_lit"].get("step_lr")
    peak = optimizer["param_groups"][0]["initial_lr"]
    for group in optimizer["param_groups"]:
        if step_lr is not None:  # OLMo-core's group LR is the one its last step ran at (ours: the next's)
            group = {**group, "lr": step_lr * group["initial_lr"] / peak}
        for index in group["params"]:
            theirs = THEIRS.get(names[index], names[index])
            for key, value in optimizer["state"][index].items():
                out[f"optim.state.{theirs}.{key}"] = value
            for key, value in group.items():
                if key not in ("params", "name"):
                    out[f"optim.param_groups.{theirs}.{key}"] = value
    return out


def olmo_core_trainer_state(ckpt: dict[str, Any], *, fingerprint: str) -> dict[str, Any]:
    """OLMo-core's ``train/rank0.pt`` (``Trainer.state_dict``) for the ``.ckpt``'s step and data position."""
    data = ckpt["TokenShardDataModule"]
    step = int(ckpt["global_step"])
    global_batch_tokens = data["total_tokens"] // max(step, 1)
    return {
        "global_step": step,
        "global_train_tokens_seen": data["total_tokens"],
        "global_train_petaflops": 0.0,
        "max_steps": step,
        "data_loader": {
            "dataset_fingerprint_version": "v2.0",
            "dataset_fingerprint": fingerprint,
            "batches_processed": data["tokens"] // global_batch_tokens,
            "tokens_processed": data["tokens"],
            "seed": data["seed"],
            "epoch": data["epoch"] + 1,
            "dataset_type": "fsl",
            "sequence_length": data["sequence_length"],
            "max_target_sequence_length": data["max_target_sequence_length"],
        },
        "epoch": data["epoch"] + 1,
        "world_size": 0,  # no rank's RNG state carries over (OLMo-core then keeps its own)
        "rng": {},
        "callbacks": {},
    }


# ------------------------------------------------------------------------------------------ CLI verbs


def from_olmo_core(
    *,
    step_dir: str,
    out: str,
    preset: Optional[str] = None,
    n_heads: Optional[int] = None,
    vocab_size: Optional[int] = None,
) -> None:
    """Convert an OLMo-core step directory into a Lightning checkpoint that ``fit --ckpt_path`` resumes.

    Carries the weights, AdamW or SkipStepAdamW moments and step counts, the per-group LR and weight
    decay, the step, the LR schedule's position and the data position (``data.order: olmo_core``). The
    step directory is only read.

    Args:
        step_dir: OLMo-core's ``stepN`` directory (``model_and_optim/`` in DCP format, ``train/rank*.pt``),
            saved by any number of ranks.
        out: the ``.ckpt`` file to write; must not exist.
        preset: the model's size (olmo2_1b, olmo2_7b, olmo2_13b, olmo2_32b); its shapes must match.
        n_heads: without a preset: the attention heads (the one size not in the weights' shapes).
        vocab_size: without a preset: the tokenizer's vocab (default: the embedding's rows).
    """
    out_path = Path(out)
    if out_path.exists():
        raise FileExistsError(f"{out} already exists; pick a new --out")
    state, trainer = read_step_dir(Path(step_dir))
    weights = {OURS.get(k[6:], k[6:]): v for k, v in state.items() if k.startswith("model.")}
    config = model_config_from_shapes(weights, preset=preset, n_heads=n_heads, vocab_size=vocab_size)
    ckpt = lightning_checkpoint(state, trainer, config)
    with atomic_file(out_path) as f:
        torch.save(ckpt, f)
    print(f"from_olmo_core: step {ckpt['global_step']} of {step_dir} -> {out}")


def to_olmo_core(
    *, checkpoint: str, out: str, dtype: str = "uint32", pad_token_id: Optional[int] = None
) -> None:
    """Convert an olmo2_lit ``.ckpt`` into an OLMo-core step directory that ``Trainer.load_checkpoint``
    accepts: weights, optimizer state, step and data position (for ``data.order: olmo_core`` runs).

    Args:
        checkpoint: a Lightning ``.ckpt`` file written by ``olmo2-lit fit``.
        out: the step directory to create (e.g. ``save/step1000``); must not exist.
        dtype: the shards' token dtype, part of OLMo-core's dataset fingerprint (OLMo-mix: uint32).
        pad_token_id: the OLMo-core run's pad id, part of its fingerprint (default: dolma2's 100277 with
            dolma2's EOS, else ``vocab_size - 1``).
    """
    out_path = Path(out)
    if out_path.exists():
        raise FileExistsError(f"{out} already exists; pick a new --out")
    ckpt = load_lightning_checkpoint(checkpoint)
    data = ckpt.get("TokenShardDataModule") or {}
    if data.get("order") != "olmo_core":
        raise CheckpointError(
            f"{checkpoint}: data.order is {data.get('order')!r}, OLMo-core reads 'olmo_core' positions only"
        )
    eos = data["eos_token_id"]
    if pad_token_id is None:
        pad_token_id = 100_277 if eos == 100_257 else data["vocab_size"] - 1
    fingerprint = olmo_core_fingerprint(
        data["shards"],
        vocab_size=data["vocab_size"],
        pad_token_id=pad_token_id,
        eos_token_id=eos,
        dtype=dtype,
        max_target_sequence_length=data["max_target_sequence_length"],
    )
    write_step_dir(out_path, olmo_core_state(ckpt), olmo_core_trainer_state(ckpt, fingerprint=fingerprint))
    print(f"to_olmo_core: step {ckpt['global_step']} of {checkpoint} -> {out}")
