"""The effect of each FSDP option value on two CPU ranks (gloo), as olmo2_lit builds the wrapping:
FSDP v1 through our ``FSDPStrategy`` and Lightning's ``_setup_model`` (``sharding_strategy``,
``reduce_dtype``), FSDP2 through ``shard_fsdp2`` with the dtypes of ``model.parallelize``
(``fsdp_param_dtype``, ``fsdp_reduce_dtype``). ``fsdp_option_ranks.py`` runs the ranks on a tiny
``Transformer`` whose block-weight gradient on each rank is that rank's hand-made input, and the expected
means are computed from both inputs in each precision.

Guards against: a sharding strategy that is not passed on (each rank's parameter elements at setup, after
forward, after backward), a reduction dtype that is configured but not applied (the reduced gradients
would equal another precision's mean), FSDP2 ``fsdp_param_dtype: float32`` that does not lift bf16 stored
parameters to fp32 compute.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def run_ranks(mode: str, tmp_path: Path) -> list[dict]:
    out = tmp_path / f"{mode}.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "fsdp_option_ranks.py"), mode, str(out)],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert len(ranks) == 2
    return ranks


@pytest.mark.slow
def test_fsdp_v1_sharding_strategies_and_reduce_dtype_on_two_ranks(tmp_path):
    ranks = run_ranks("v1", tmp_path)
    for seen in ranks:
        expected, full = seen["expected"], seen["full"]  # 36: two 4x4 blocks and a 4-element head
        # elements each rank holds: whole model at setup; the blocks at setup, after forward, after backward
        shapes = {
            "FULL_SHARD": (full // 2, 16, 16, 16),  # sharded, resharded after forward and backward
            "SHARD_GRAD_OP": (full // 2, 16, 32, 16),  # kept gathered from forward to backward
            "NO_SHARD": (full, 32, 32, 32),  # every rank the whole model
            "HYBRID_SHARD": (full // 2, 16, 16, 16),  # one node of two: sharded within it, as FULL_SHARD
        }
        for sharding, numels in shapes.items():
            got = seen[sharding]
            assert (got["setup"], got["blocks_setup"], got["blocks_after_forward"],
                    got["blocks_after_backward"]) == numels, sharding  # fmt: skip
            assert got["grads"] == [expected["fp32"]] * 2, sharding  # fp32 (default reduce_dtype): exact
        assert seen["reduce_float32"] == [expected["fp32"]] * 2
        assert seen["reduce_bfloat16"] == [expected["bf16_reduced"]] * 2
        assert expected["bf16_reduced"] != expected["fp32"]


@pytest.mark.slow
def test_fsdp2_param_and_reduce_dtypes_on_two_ranks(tmp_path):
    ranks = run_ranks("fsdp2", tmp_path)
    assert ranks[0] == ranks[1]
    seen, expected = ranks[0], ranks[0]["expected"]
    bf16, fp32 = "torch.bfloat16", "torch.float32"
    # bf16 stored parameters: computed in bf16 unless fsdp_param_dtype is float32 (gradients kept in bf16)
    assert seen["stored_bf16"] == {
        "compute": [bf16],
        "grad_dtype": bf16,
        "grads": [expected["bf16_reduced"]] * 2,
    }
    assert seen["stored_bf16_param_float32"] == {
        "compute": [fp32], "grad_dtype": bf16, "grads": [expected["fp32_stored_bf16"]] * 2}  # fmt: skip
    # fp32 stored, bf16 compute (OLMo 2): reduced in bf16 unless fsdp_reduce_dtype is float32
    for name in ("param_bfloat16", "reduce_bfloat16"):
        assert seen[name] == {"compute": [bf16], "grad_dtype": fp32, "grads": [expected["bf16_reduced"]] * 2}
    exact_of_bf16 = [expected["bf16_grads_fp32_reduced"]] * 2
    assert seen["reduce_float32"] == {"compute": [bf16], "grad_dtype": fp32, "grads": exact_of_bf16}
    assert expected["fp32_stored_bf16"] != expected["bf16_reduced"] != expected["bf16_grads_fp32_reduced"]
