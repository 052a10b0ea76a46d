"""OLMo 2's mixed precision under FSDP2 (``experiments/strategies/fsdp2.yaml``), here on one device (the
same ``parallelize`` call as on many): the blocks compute with bf16 weights while AdamW keeps and updates
fp32 parameters from fp32 gradients (``MixedPrecisionPolicy(param_dtype=bfloat16, reduce_dtype=float32)``),
and ``fsdp_param_dtype: null`` turns it off. Guards against a policy that is configured but never applied
(fp32 compute), one that casts the stored parameters (bf16 master weights: updates below bf16's
resolution lost) or hands the optimizer bf16 gradients; the YAML alone shows none of these."""

import json
from pathlib import Path

import pytest
from training_helpers import fit_subprocess, scalars, tiny_args

HERE = Path(__file__).resolve().parent
FSDP2 = str(HERE.parents[1] / "experiments" / "strategies" / "fsdp2.yaml")


@pytest.mark.parametrize("param_dtype", ["bfloat16", "null"])
def test_fsdp2_on_one_device_computes_in_bf16_and_keeps_fp32_weights_and_grads(shards, tmp_path, param_dtype):
    out = tmp_path / "dtypes.json"
    extra = ("--config", FSDP2, "--trainer.devices", "1", "--model.parallelize.fsdp_param_dtype", param_dtype,
             "--checkpoint.dirpath", str(tmp_path / "ckpt"), "--checkpoint.every_n_train_steps", "2",
             "--trainer.callbacks+=dtype_probe.RecordDtypes", f"--trainer.callbacks.out={out}")  # fmt: skip
    fit_subprocess(tiny_args(tmp_path, shards, max_steps=2, extra=extra), tmp_path, pythonpath=(HERE,))
    seen = json.loads(out.read_text())
    compute = "torch.bfloat16" if param_dtype == "bfloat16" else "torch.float32"
    assert seen == {"compute": compute, "activation": compute, "params": ["torch.float32"],
                    "grads": ["torch.float32"]}  # fmt: skip
    assert [s for s, _ in scalars(tmp_path, "train/ce_loss")] == [0, 1]
