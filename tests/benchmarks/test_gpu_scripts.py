"""The Python entry points of benchmarks/gpu_check.sh run end to end on the CPU with tiny shapes
(``--cpu_smoke``), so the minutes of a lent GPU are not lost to a typo: every row prints, float8 through
torchao's emulation, FSDP2 over gloo, and the strategies check finds FSDP2's first loss identical to DDP's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: int = 300) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_throughput_rows_run_with_float8_the_peer_and_fsdp2():
    out = _run(
        "benchmarks/gpu_throughput.py",
        "--cpu_smoke",
        "--variants",
        "bf16",
        "float8",
        "--peer",
        "transformers",
    )
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["bf16", "float8", "transformers"], out
    out = _run("benchmarks/gpu_throughput.py", "--cpu_smoke", "--variants", "bf16", "float8", "--fsdp2")
    assert "FSDP2 bf16 params" in out and [line.split()[0] for line in out.splitlines()[1:]] == [
        "bf16",
        "float8",
    ]
    assert "tok/s" in out and "out of memory" not in out


def test_attention_backends_agree_with_documents():
    out = _run("benchmarks/gpu_attention.py", "--cpu_smoke")
    rows = [line for line in out.splitlines() if "fwd+bwd" in line]
    assert [r.split()[0] for r in rows] == ["sdpa", "eager"] and all(r.endswith("ok") for r in rows), out


@pytest.mark.slow
def test_strategies_check_finds_fsdp2_identical_to_ddp_at_step_1():
    """Two tiny fits in subprocesses (~25 s of CPU time)."""
    out = _run("benchmarks/gpu_scaleout.py", "--cpu_smoke", timeout=600)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("ddp ", "fsdp2 "))}
    assert rows["fsdp2"][2] == "identical" and rows["fsdp2"][5] == "ok", out
    assert "0 problem(s)" in out
