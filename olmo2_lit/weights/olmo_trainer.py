"""Continuing an OLMo-trainer run here: the unsharded checkpoints of ai2-olmo (docs/interop.md).

The OLMo trainer (ai2-olmo 0.6.0, which trained OLMo 2 1124 7B and 13B) writes ``stepN-unsharded/`` with its
``FullCheckpointer``: ``model.pt`` (the model's state dict, ``transformer.*``, attention and MLP input
projections fused), ``optim.pt`` (the optimizer state dict over its ``decay`` then ``no_decay`` groups:
under DDP torch's, keyed by index, each group naming its ``param_names``; under FSDP, as the 7B and 13B
ran, ``FSDP.optim_state_dict``'s, keyed by name), ``train.pt`` (``Trainer.trainer_state_dict``:
epoch, global step, examples seen this epoch, tokens seen) and ``config.yaml`` (its ``TrainConfig``).
This module maps names, fused tensors, groups and the data position; ai2-olmo is not needed.

The OLMo trainer divides a step's summed loss by all ``B x T`` tokens of the batch, olmo2_lit (as OLMo-core)
by the ``B x (T - 1)`` targets, so our gradients are ``T / (T - 1)`` times its. The Adam moments are
scaled by that factor (and its square) so the continuation takes the OLMo trainer's steps; its
``max_grad_norm`` clips where ``gradient_clip_val = max_grad_norm x T / (T - 1)`` does here.
"""

from __future__ import annotations

import pathlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import yaml

from olmo2_lit import compat
from olmo2_lit.atomic import atomic_file
from olmo2_lit.errors import CheckpointError
from olmo2_lit.model import ModelConfig
from olmo2_lit.weights.olmo_core import grouped_optimizer_state, model_config_from_shapes, our_groups
from olmo2_lit.weights.resumable import resumable_checkpoint

FILES = ("model.pt", "optim.pt", "train.pt", "config.yaml")
#: Group hyperparameters that must agree within one of our groups (ai2-olmo keeps no ``initial_lr``).
GROUP_FIELDS = ("weight_decay", "betas", "eps")
#: ai2-olmo ``ModelConfig`` fields that make its model OLMo 2's (our reordered-norm block), and their values.
OLMO2_SHAPE = {
    "block_type": "sequential",
    "norm_after": True,
    "attention_layer_norm": True,
    "attention_layer_norm_with_affine": True,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "activation_type": "swiglu",
    "include_bias": False,
    "weight_tying": False,
    "rope": True,
    "alibi": False,
    "scale_logits": False,
    "embedding_layer_norm": False,
}
#: Whole tensors whose name differs (the rest of a block is mapped in ``_split``).
OURS = {
    "transformer.wte.weight": "embeddings.weight",
    "transformer.ln_f.weight": "norm.weight",
    "transformer.ff_out.weight": "lm_head.weight",
}
BLOCK = {
    "attn_out": "attention.w_out",
    "q_norm": "attention.q_norm",
    "k_norm": "attention.k_norm",
    "attn_norm": "attention_norm",
    "ff_norm": "feed_forward_norm",
    "ff_out": "feed_forward.w2",
}
#: The z-loss weight ai2-olmo 0.6.0's Trainer applies with ``softmax_auxiliary_loss``: its
#: ``cross_entropy_loss`` default (``Trainer.model_forward`` does not pass ``auxiliary_loss_multiplier``).
Z_LOSS_MULTIPLIER = 1e-4
#: Keys of ai2-olmo's param groups that are its own, not torch's AdamW's.
THEIR_GROUP_KEYS = ("params", "param_names", "sharded", "max_grad_norm", "max_grad_norm_ratio")
#: What ``train.pt`` pickles besides tensors: checkpoint paths and numpy's RNG state.
TRAIN_GLOBALS = [
    pathlib.PosixPath,
    np.ndarray,
    np.dtype,
    type(np.dtype("uint32")),
    *compat.numpy_pickle_globals(),  # numpy's array unpickler, under its numpy < 2 and >= 2 paths
]


# ---------------------------------------------------------------------------------------------- reading


def read_checkpoint_dir(directory: Path) -> tuple[dict, dict, dict, dict]:
    """``(model.pt, optim.pt, train.pt, config.yaml)`` of an unsharded checkpoint, loaded ``weights_only``.

    Raises:
        CheckpointError: naming a missing, truncated or unreadable file.
    """
    for name in FILES:
        if not (directory / name).is_file():
            raise CheckpointError(
                f"{directory / name} is missing: {directory} is not an OLMo-trainer unsharded checkpoint"
            )
    loaded = []
    for name in FILES[:3]:
        try:
            with torch.serialization.safe_globals(TRAIN_GLOBALS if name == "train.pt" else []):
                loaded.append(torch.load(directory / name, map_location="cpu", weights_only=True))
        except Exception as e:  # a truncated zip, a foreign pickle
            raise CheckpointError(
                f"{directory / name} cannot be read ({type(e).__name__}): truncated or corrupt"
            ) from e
    try:
        config = yaml.safe_load((directory / "config.yaml").read_text())
    except yaml.YAMLError as e:
        raise CheckpointError(f"{directory / 'config.yaml'} cannot be read: {str(e).splitlines()[0]}") from e
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(
            f"{directory / 'config.yaml'} has no model section: truncated or not ai2-olmo's"
        )
    return loaded[0], loaded[1], loaded[2], config


# ------------------------------------------------------------------------------------------ the model


def model_config(
    cfg: dict, weights: dict[str, torch.Tensor], *, preset: Optional[str], path: Path
) -> ModelConfig:
    """Our ModelConfig for an ai2-olmo ``config.yaml`` (its model section) and its weights (our names).

    Raises:
        CheckpointError: a field that is not OLMo 2's, or a preset whose sizes differ, naming both values.
    """
    model = cfg["model"]
    for field, want in OLMO2_SHAPE.items():
        if model.get(field) != want:
            raise CheckpointError(
                f"architecture: model.{field} is {model.get(field)} in {path} and {want} in olmo2_lit's "
                "OLMo 2 (reordered-norm) model"
            )
    config = model_config_from_shapes(
        weights, preset=preset, n_heads=model["n_heads"], vocab_size=model["vocab_size"]
    )
    found = {
        "n_heads": model["n_heads"],
        "n_kv_heads": None if model.get("n_kv_heads") in (None, model["n_heads"]) else model["n_kv_heads"],
        "vocab_size": model["vocab_size"],
        "rope_theta": float(model["rope_theta"]),
        "norm_eps": float(model["layer_norm_eps"]),
        "clip_qkv": model.get("clip_qkv"),
    }
    if preset is None:
        config = ModelConfig(**{**config.to_dict(), **found}).resolved()
    for field, value in found.items():
        if getattr(config, field) != value:
            raise CheckpointError(
                f"architecture: {field} is {value} in {path} and {getattr(config, field)} in preset {preset}"
            )
    if model.get("embedding_size") not in (None, config.padded_vocab_size):
        raise CheckpointError(
            f"architecture: embedding_size is {model['embedding_size']} in {path} and "
            f"{config.padded_vocab_size} here (vocab_size {config.vocab_size} padded to a multiple of "
            f"{config.vocab_pad_multiple})"
        )
    return config


def _clean(name: str) -> str:
    """A parameter's name in the bare model: without DDP's ``module.`` or FSDP's wrapper prefix."""
    return name.replace("_fsdp_wrapped_module.", "").removeprefix("module.")


def _split(name: str, tensor: torch.Tensor, model: dict) -> list[tuple[str, torch.Tensor]]:
    """Our ``(name, tensor)`` pieces of one ai2-olmo tensor (a weight, or an Adam moment of it)."""
    name = _clean(name)
    if name in OURS:
        return [(OURS[name], tensor)]
    parts = name.split(".")
    if len(parts) != 5 or parts[:2] != ["transformer", "blocks"]:
        raise CheckpointError(f"architecture: {name} has no counterpart in olmo2_lit's OLMo 2 model")
    block, kind = f"blocks.{parts[2]}", parts[3]
    if kind == "att_proj":  # fused (q, k, v)
        d = model["d_model"]
        kv = d // model["n_heads"] * (model.get("n_kv_heads") or model["n_heads"])
        q, k, v = tensor.split([d, kv, kv], dim=0)
        return [(f"{block}.attention.w_{n}.weight", t) for n, t in (("q", q), ("k", k), ("v", v))]
    if kind == "ff_proj":  # SwiGLU's (x, gate): silu(gate) * x
        up, gate = tensor.chunk(2, dim=0)
        return [(f"{block}.feed_forward.w3.weight", up), (f"{block}.feed_forward.w1.weight", gate)]
    if kind in BLOCK:
        return [(f"{block}.{BLOCK[kind]}.weight", tensor)]
    raise CheckpointError(f"architecture: {name} has no counterpart in olmo2_lit's OLMo 2 model")


def our_weights(state: dict[str, torch.Tensor], model: dict) -> dict[str, torch.Tensor]:
    """``model.pt`` under our names, fused projections split (contiguous copies)."""
    return {
        n: t.contiguous().clone() for name, tensor in state.items() for n, t in _split(name, tensor, model)
    }


# ----------------------------------------------------------------------------------------- optimizer


def our_optimizer(
    optim: dict, weights: dict[str, torch.Tensor], config: ModelConfig, cfg: dict, *, path: Path
) -> dict[str, Any]:
    """Our optimizer state dict (olmo2_lit's default groups) from ai2-olmo's ``optim.pt`` (``weights``: its
    ``model.pt``, for the names of a parameter with no state yet).

    Raises:
        CheckpointError: groups olmo2_lit's default groups cannot hold, naming the field and both values.
    """
    model, scale = cfg["model"], _loss_scale(cfg)
    weights = {_clean(k): v for k, v in weights.items()}
    source: dict[str, tuple[str, dict, dict]] = {}  # our name -> (their name, their group, our state)
    for group in optim["param_groups"]:
        # ai2-olmo names each group's parameters (under FSDP with its wrapper's prefix); DDP's optim.pt keys
        # the state by index, FSDP's (OLMo 2 7B, 13B) by name: params holds the keys either way
        names = group.get("param_names")
        if names is None:
            raise CheckpointError(f"optimizer param groups: {path} names no parameters (param_names)")
        for index, their in zip(group["params"], names):
            their = _clean(their)
            state = optim["state"].get(index, {})
            if their not in weights:
                raise CheckpointError(f"optimizer param groups: {their} is in {path} but not in model.pt")
            for ours, _ in _split(their, weights[their], model):
                source[ours] = (their, group, {"step": state["step"].clone()} if "step" in state else {})
            for key, factor in (("exp_avg", scale), ("exp_avg_sq", scale**2)):
                if key in state:
                    for ours, t in _split(their, state[key], model):
                        source[ours][2][key] = t.contiguous() * factor
    groups = our_groups(config)
    expected = {n for g in groups for n in g}
    if set(source) != expected:
        missing, extra = sorted(expected - set(source)), sorted(set(source) - expected)
        raise CheckpointError(
            f"optimizer param groups: {path} lacks {missing[:3]}, has unexpected {extra[:3]}"
        )
    for name, (their, group, piece) in source.items():  # ai2-olmo's own keys dropped, our peak LR added
        kept = {k: v for k, v in group.items() if k not in THEIR_GROUP_KEYS}
        source[name] = (their, {**kept, "initial_lr": cfg["optimizer"]["learning_rate"]}, piece)
    return grouped_optimizer_state(groups, source, fields=GROUP_FIELDS, where=str(path))


def _loss_scale(cfg: dict) -> float:
    """Our gradient over the OLMo trainer's: ``T / (T - 1)`` (its loss is over all tokens, ours over the
    targets)."""
    length = cfg["model"]["max_sequence_length"]
    return length / (length - 1)


# ------------------------------------------------------------------------------------- data position


def data_position(train: dict, cfg: dict, config: ModelConfig) -> dict[str, Any]:
    """Our ``TokenShardDataModule`` state (``order: olmo``) at the OLMo trainer's position."""
    length = cfg["model"]["max_sequence_length"]
    data = cfg.get("data") or {}
    return {
        "version": 1,
        "epoch": int(train.get("epoch") or 0),  # both count data epochs from 0
        "tokens": int(train["global_train_examples_seen_this_epoch"]) * length,
        "total_tokens": int(train["global_train_tokens_seen"]),
        "seed": data["seed"] if data.get("seed") is not None else cfg["seed"],
        "sequence_length": length,
        "order": "olmo",
        "max_target_sequence_length": None,
        "fingerprint": None,  # our shard-set fingerprint is unknown; resume checks what it can
        "shards": None,
        "converted_from": "the OLMo trainer",
        "global_batch_tokens": int(cfg["global_train_batch_size"]) * length,
        "eos_token_id": cfg["model"].get("eos_token_id"),
        "vocab_size": config.vocab_size,
    }


# ------------------------------------------------------------------------------------------ CLI verb


def from_olmo_trainer(*, checkpoint_dir: str, out: str, preset: Optional[str] = None) -> None:
    """Convert an OLMo-trainer (ai2-olmo) unsharded checkpoint into a .ckpt that fit --ckpt_path resumes.

    The run resumes with ``data.order: olmo``, the OLMo trainer's data order.

    Carries the weights, the AdamW moments and step counts (scaled to our loss normalization), the per-group
    LR and weight decay, the step, the LR schedule's position and the data position (epoch and instances
    into it, seed, tokens seen). The checkpoint directory is only read. It prints the run settings that take
    the OLMo trainer's own steps: ``trainer.gradient_clip_val`` (its ``max_grad_norm`` x T / (T - 1)) and
    ``model.z_loss_multiplier``.

    Args:
        checkpoint_dir: the OLMo trainer's ``stepN-unsharded`` directory (``model.pt``, ``optim.pt``,
            ``train.pt``, ``config.yaml``).
        out: the ``.ckpt`` file to write; must not exist.
        preset: the model's size (olmo2_1b, olmo2_7b, olmo2_13b, olmo2_32b); its sizes must match.
    """
    out_path, directory = Path(out), Path(checkpoint_dir)
    if out_path.exists():
        raise FileExistsError(f"{out} already exists; pick a new --out")
    model_state, optim, train, cfg = read_checkpoint_dir(directory)
    weights = our_weights(model_state, cfg["model"])
    config = model_config(cfg, weights, preset=preset, path=directory / "config.yaml")
    optimizer = our_optimizer(optim, model_state, config, cfg, path=directory / "optim.pt")
    ckpt = resumable_checkpoint(
        weights, optimizer, config, step=int(train["global_step"]), data=data_position(train, cfg, config)
    )
    with atomic_file(out_path) as f:
        torch.save(ckpt, f)
    clip = cfg.get("max_grad_norm")
    z_loss = Z_LOSS_MULTIPLIER if cfg.get("softmax_auxiliary_loss") else 0.0
    print(
        f"from_olmo_trainer: step {ckpt['global_step']} of {checkpoint_dir} -> {out}; data.order: olmo, "
        f"sequence_length {cfg['model']['max_sequence_length']}, "
        f"global_batch_size {cfg['global_train_batch_size']}"
        + f"; model.z_loss_multiplier {z_loss}"
        + (
            f"; its max_grad_norm {clip} is trainer.gradient_clip_val {clip * _loss_scale(cfg)!r} here"
            if clip
            else ""
        )
    )
