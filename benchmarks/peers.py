"""The libraries the benchmarks compare, each built from the same weights, and the check that they
compute the same function before anything is timed.

Every peer is built from *our* state dict, so all of them hold the same numbers:

- ``olmo2_lit``: our :class:`Transformer`, ``load_state_dict`` as is.
- ``transformers``: ``Olmo2ForCausalLM`` from our HF converter (``model_config_to_hf_config`` and
  ``native_to_hf``, olmo2_lit/weights), the path ``olmo2-lit convert to-hf`` takes.
- ``olmo_core``: OLMo-core's ``Transformer`` from ``TransformerConfig.llama_like`` with OLMo 2's
  choices (reordered-norm blocks, QK-norm over the full width, RMSNorm eps 1e-6, RoPE theta 500k, no
  biases, SwiGLU of our ``mlp_hidden``; what ``TransformerConfig.olmo2_*`` set, OLMO2.md §1.4), and
  its weights from our HF state dict through OLMo-core's *own* converter
  (``olmo_core.nn.hf.convert.convert_state_from_hf``, model type ``olmo2``). Its keys are ours except
  the final norm and output projection: ``norm.weight`` -> ``lm_head.norm.weight`` and
  ``lm_head.weight`` -> ``lm_head.w_out.weight``.

Each peer has a ``logits(model, x)`` and a ``train_loss(model, x, y, z)`` returning summed
``(ce, z_loss)``: ours fuses the output projection with the loss; the others compute the logits and
our ``lm_loss_sums`` on them (OLMo-core's own fused LM-head loss is not what is timed here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.loss import lm_loss_sums
from olmo2_lit.weights.convert_hf import model_config_to_hf_config
from olmo2_lit.weights.state_dicts import native_to_hf

#: Largest |logit difference| to ours, fp32, on the check batch; a wrong norm, RoPE theta or weight
#: mapping gives differences of order 0.1-1.
LOGITS_ATOL = 1e-4


@dataclass(frozen=True)
class Peer:
    """How to build one library's model from our weights, and call it."""

    build: Callable[[ModelConfig, dict], nn.Module]
    logits: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    train_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


def _ours(cfg: ModelConfig, weights: dict) -> nn.Module:
    model = Transformer(cfg, init_weights=False)
    model.load_state_dict(weights)
    return model


def _hf_config(cfg: ModelConfig):
    from transformers import Olmo2Config

    return Olmo2Config(**model_config_to_hf_config(cfg, eos_token_id=0, pad_token_id=1, dtype="float32"))


def _transformers(cfg: ModelConfig, weights: dict) -> nn.Module:
    from transformers import Olmo2ForCausalLM

    hf = Olmo2ForCausalLM(_hf_config(cfg))
    hf.load_state_dict(native_to_hf(weights, cfg))
    hf.config.use_cache = False
    return hf


def olmo_core_config(cfg: ModelConfig):
    """OLMo-core's ``TransformerConfig`` of OLMo 2's architecture with ``cfg``'s sizes."""
    from olmo_core.nn.feed_forward import FeedForwardConfig
    from olmo_core.nn.transformer import TransformerBlockType, TransformerConfig

    if cfg.block != "reordered_norm" or cfg.norm != "rms_norm" or cfg.mlp != "swiglu" or not cfg.qk_norm:
        raise ValueError(
            "the OLMo-core peer is built for OLMo 2's architecture only (the default ModelConfig)"
        )
    return TransformerConfig.llama_like(
        d_model=cfg.d_model,
        vocab_size=cfg.padded_vocab_size,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads,
        block_name=TransformerBlockType.reordered_norm,
        qk_norm=True,
        rope_theta=int(cfg.rope_theta),
        layer_norm_eps=cfg.norm_eps,
        feed_forward=FeedForwardConfig(hidden_size=cfg.mlp_hidden, bias=False),
    )


def _olmo_core(cfg: ModelConfig, weights: dict) -> nn.Module:
    from olmo_core.nn.hf.convert import convert_state_from_hf

    sd = convert_state_from_hf(_hf_config(cfg), native_to_hf(weights, cfg), model_type="olmo2")
    with torch.device("meta"):
        model = olmo_core_config(cfg).build(init_device="meta")
    # cloned: the model owns its parameters (memory mode counts them), as the other peers' do
    model.load_state_dict({k: t.clone() for k, t in sd.items()}, strict=True, assign=True)
    return model


def _fused_loss(m, x, y, z):
    return m(x, labels=y, z_loss_multiplier=z)


PEERS: dict[str, Peer] = {
    "olmo2_lit": Peer(build=_ours, logits=lambda m, x: m(x), train_loss=_fused_loss),
    "transformers": Peer(
        build=_transformers,
        logits=lambda m, x: m(input_ids=x).logits,
        train_loss=lambda m, x, y, z: lm_loss_sums(m(input_ids=x).logits, y, z_loss_multiplier=z),
    ),
    "olmo_core": Peer(
        build=_olmo_core,
        logits=lambda m, x: m(x),
        train_loss=lambda m, x, y, z: lm_loss_sums(m(x), y, z_loss_multiplier=z),
    ),
}


def available_peers() -> list[str]:
    """The peers whose library imports here (ours and transformers always; OLMo-core if installed)."""
    try:
        import olmo_core.nn.transformer  # noqa: F401
    except ImportError:
        return ["olmo2_lit", "transformers"]
    return list(PEERS)


def check_logits(
    name: str, model: nn.Module, x: torch.Tensor, reference: torch.Tensor, *, atol: float = LOGITS_ATOL
) -> None:
    """Exit with a message unless ``model``'s fp32 logits on ``x`` match ours (``reference``) to ``atol``."""
    with torch.no_grad():
        logits = PEERS[name].logits(model, x).float()
    diff = (logits - reference).abs().max().item() if logits.shape == reference.shape else float("inf")
    if not diff <= atol:
        raise SystemExit(
            f"{name} does not compute our model's function: max |logits - ours| = {diff:.3g} "
            f"(shapes {tuple(logits.shape)} vs {tuple(reference.shape)}; tolerance {atol}); "
            "not timing it. Check the weight mapping in benchmarks/peers.py."
        )
