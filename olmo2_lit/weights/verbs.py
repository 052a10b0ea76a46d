"""The ``olmo2-lit convert from-hf | to-hf`` verbs: plain functions whose docstrings are their ``--help``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from olmo2_lit.errors import ConfigError
from olmo2_lit.model import ModelConfig
from olmo2_lit.model.config import DOLMA2_VOCAB_SIZE
from olmo2_lit.weights.convert_hf import DOLMA2_EOS_TOKEN_ID, DOLMA2_PAD_TOKEN_ID, DTypeName
from olmo2_lit.weights.export import check_out_dir, export_hf, save_native
from olmo2_lit.weights.pretrained import import_hf, load_lightning_checkpoint, read_checkpoint

# ----------------------------------------------------------------------------------------- CLI verbs


def from_hf(*, hf_dir: str, out_dir: str, dtype: DTypeName = "float32") -> None:
    """Convert a Hugging Face OLMo 2 checkpoint into a native olmo2_lit weights directory.

    Args:
        hf_dir: local HF checkpoint dir (config.json + model.safetensors or shards + index), e.g. a
            snapshot of allenai/OLMo-2-0425-1B.
        out_dir: directory to create with model.safetensors and model_config.json; must not exist or be empty.
        dtype: dtype of the written weights: float32 | bfloat16 | float16.
    """
    check_out_dir(Path(out_dir))
    model = import_hf(hf_dir, dtype=dtype)
    save_native(model, out_dir)
    print(f"from_hf: {model.num_params():,} params ({dtype}) from {hf_dir} -> {out_dir}")


def token_ids_for_export(
    cfg: ModelConfig, data: Optional[dict], *, eos_token_id: Optional[int], pad_token_id: Optional[int]
) -> tuple[int, int, str]:
    """The EOS and pad ids to export, and where they came from.

    EOS: the one given, else the training data's (the checkpoint's datamodule state records it), else
    dolma2's when the model has dolma2's vocab (OLMO2.md §6). Pad: the one given, else dolma2's pad
    beside dolma2's EOS, else the EOS id (what HF generation falls back to anyway).

    Raises:
        ConfigError: no EOS id given and none recorded, for a vocab that is not dolma2's.
    """
    source = "given"
    if eos_token_id is None:
        if data and data.get("eos_token_id") is not None:
            eos_token_id, source = int(data["eos_token_id"]), "the checkpoint's training data"
        elif cfg.vocab_size == DOLMA2_VOCAB_SIZE:
            eos_token_id, source = DOLMA2_EOS_TOKEN_ID, "dolma2's, as the vocab is dolma2's"
        else:
            raise ConfigError(
                f"no EOS id recorded with these weights and vocab_size {cfg.vocab_size} is not dolma2's: "
                "pass --eos_token_id (the id appended after each document; see the shards' .meta.json)"
            )
    if pad_token_id is None:
        pad_token_id = DOLMA2_PAD_TOKEN_ID if eos_token_id == DOLMA2_EOS_TOKEN_ID else eos_token_id
    return eos_token_id, pad_token_id, source


def to_hf(
    *,
    checkpoint: str,
    out_dir: str,
    dtype: DTypeName = "bfloat16",
    tokenizer_json: Optional[str] = None,
    eos_token_id: Optional[int] = None,
    pad_token_id: Optional[int] = None,
    max_shard_size: int = 5_000_000_000,
) -> None:
    """Convert a training checkpoint into a Hugging Face Olmo2ForCausalLM directory.

    Args:
        checkpoint: a Lightning .ckpt saved by olmo2_lit training, a sharded (FSDP2) checkpoint directory,
            or a native weights directory (an HF
            OLMo 2 directory also works, e.g. to re-save it in another dtype).
        out_dir: directory to create; must not exist or be empty.
        dtype: dtype of the written weights: float32 | bfloat16 | float16.
        tokenizer_json: path of a tokenizer.json to copy into out_dir.
        eos_token_id: end-of-text id written to config.json and generation_config.json. None: the one
            the checkpoint's training data recorded, else dolma2's (100257) for dolma2's vocab.
        pad_token_id: padding id written likewise. None: dolma2's (100277) beside dolma2's EOS, else
            the EOS id.
        max_shard_size: bytes per safetensors file; larger checkpoints are sharded with an index.
    """
    check_out_dir(Path(out_dir))
    cfg, sd = read_checkpoint(checkpoint)
    data = None
    if Path(checkpoint).is_file():
        data = load_lightning_checkpoint(checkpoint).get("TokenShardDataModule")
    eos_token_id, pad_token_id, source = token_ids_for_export(
        cfg, data, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    n_shards = export_hf(
        sd,
        cfg,
        out_dir,
        dtype=dtype,
        tokenizer_json=tokenizer_json,
        max_shard_size=max_shard_size,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    n_params = sum(t.numel() for t in sd.values())
    print(
        f"to_hf: {n_params:,} params ({dtype}, {n_shards} file(s)) from {checkpoint} -> {out_dir}; "
        f"eos_token_id {eos_token_id} ({source}), pad_token_id {pad_token_id}"
    )
