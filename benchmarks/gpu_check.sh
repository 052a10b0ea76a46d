#!/usr/bin/env bash
# Every GPU check in one script, for a lent H100/H200 (docs/gpu.md says what it printed, and what waits).
#
#   bash benchmarks/gpu_check.sh              # everything, at most ~9 minutes on one H100/H200
#   bash benchmarks/gpu_check.sh --quick      # the 1B throughput rows only (bf16 and float8), ~3 minutes
#   bash benchmarks/gpu_check.sh --cpu_smoke  # every Python entry point below on the CPU, tiny shapes
#
# Run from the repository root. .whl/ carries the wheels the GPU image lacks (jsonargparse and its
# helpers, zstandard, pydantic and hjson for DeepSpeed, torchao for float8, a DeepSpeed wheel built with
# DS_BUILD_OPS=0; docs/gpu.md lists the commands that fill it). Each stage has its own time limit
# (`timeout`) and gets at most what remains of GPU_CHECK_BUDGET (default 530 s), so one slow stage cannot
# eat the others. XFORMERS_PYTHON, if set, is a python with xformers and the torch it was built for
# (xformers 0.0.35: torch 2.10); the attention stage then runs there too.
set -u
MODE=${1:-full}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
# each stage gets what remains of the budget, at most its own cap, at least 1 s (timeout 0 would mean none)
cap() { local l=$(( ${GPU_CHECK_BUDGET:-530} - SECONDS )); (( l < 1 )) && l=1; (( l > $1 )) && l=$1; echo $l; }
stage() { echo; echo "== $* (at ${SECONDS}s)"; }

if [ "$MODE" = "--cpu_smoke" ]; then
  # The same entry points with tiny shapes on the CPU: a typo here costs no GPU minutes.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  stage "smoke: gpu_throughput (bf16, float8 emulated, transformers peer; FSDP2 bf16 params)"
  $PY benchmarks/gpu_throughput.py --cpu_smoke --variants bf16 float8 --peer transformers || exit 1
  $PY benchmarks/gpu_throughput.py --cpu_smoke --variants bf16 float8 --fsdp2 || exit 1
  stage "smoke: gpu_scaleout (DDP and FSDP2, fp32, step 1 identical)"
  $PY benchmarks/gpu_scaleout.py --cpu_smoke | tail -5
  stage "smoke: gpu_attention (sdpa and eager with documents)"
  $PY benchmarks/gpu_attention.py --cpu_smoke || exit 1
  stage "smoke: the CUDA-marked tests collect"
  $PY -m pytest -q --collect-only -m requires_cuda tests/model/test_attention.py tests/training/test_parallelize.py \
    tests/data/test_document_masking.py tests/training/test_initial_weights.py \
    tests/training/test_atomic_sharded_save.py 2>&1 | tail -1
  echo "== smoke done in ${SECONDS}s"
  exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
  for sdist in .whl/sdist/*.tar.gz; do  # a DeepSpeed source, if no wheel was carried
    [ -e "$sdist" ] && DS_BUILD_OPS=0 timeout $(cap 90) $PY -m pip install -q --no-index --no-deps \
      --no-build-isolation --target /tmp/site "$sdist" 2>&1 | grep -vi warning | tail -2
  done
fi
$PY -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v WARNING | tail -2
$PY -c "import torch, lightning, transformers; print('torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__)"
$PY -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1
$PY -c "import torchao; print('torchao', torchao.__version__)" 2>&1 | tail -1

# The largest 1B micro batch to try first: ~22 GiB of fp32 weights, grads and Adam state plus ~10 GiB per
# 4096-token sample without activation checkpointing (63.2 GiB at micro 4 on 2026-11-27).
MEM_MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
if (( MEM_MIB > 120000 )); then BATCHES="8 6 4"; else BATCHES="4 2"; fi

stage "1. 1B, seq 4096, bf16 autocast, compiled per block (compile: auto), largest micro batch of $BATCHES without activation checkpointing; then float8 (tensorwise); tokens/s, MFU (bf16 peak), peak memory"
timeout $(cap 170) $PY benchmarks/gpu_throughput.py --preset olmo2_1b --seq 4096 --batch $BATCHES \
  --variants bf16 float8
[ "$MODE" = "--quick" ] && { echo "== quick done at ${SECONDS}s"; exit 0; }

stage "2. 7B widths (d_model 4096, 32 heads), 4 layers, seq 4096, micro 2: FSDP2 with bf16 params / fp32 reduce, compiled, against transformers' Olmo2ForCausalLM with the same layers (eager, fp32 weights, autocast)"
timeout $(cap 100) $PY benchmarks/gpu_throughput.py --preset olmo2_7b --layers 4 --seq 4096 --batch 2 \
  --fsdp2 --peer transformers

stage "3. strategies on one GPU, fp32, same initial weights: DDP, FSDP2, FSDP v1, ZeRO-2, ZeRO-3 (10 steps each)"
timeout $(cap 160) $PY benchmarks/gpu_scaleout.py 2>&1 | tail -12

stage "4. attention backends with document masking at 4096 (bf16): outputs, gradients, speed"
timeout $(cap 45) $PY benchmarks/gpu_attention.py
if [ -n "${XFORMERS_PYTHON:-}" ]; then
  timeout $(cap 40) "$XFORMERS_PYTHON" benchmarks/gpu_attention.py --backends sdpa xformers
fi

stage "5. the CUDA-marked tests"
timeout $(cap 90) $PY -m pytest -q -p no:warnings -rs -m requires_cuda tests/model/test_attention.py \
  tests/training/test_parallelize.py tests/data/test_document_masking.py tests/training/test_initial_weights.py \
  tests/training/test_atomic_sharded_save.py -x 2>&1 | tail -6
echo "== done at ${SECONDS}s"
