#!/usr/bin/env bash
# Every GPU check in one script, for a lent H100/H200 (see docs/gpu.md for what it printed).
# Run from the repository root; .whl/ carries the pure-Python wheels the GPU image lacks
# (jsonargparse and its helpers, zstandard, pydantic and hjson for DeepSpeed) and .whl/sdist/ the
# DeepSpeed source, built there without network. Each part has its own time limit, so one that hangs
# does not cost the others; the whole script stays under ~9 minutes on one H100.
set -u
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
REPO=$(pwd)
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
  for sdist in .whl/sdist/*.tar.gz; do
    [ -e "$sdist" ] && DS_BUILD_OPS=0 timeout 120 python3 -m pip install -q --no-index --no-deps \
      --no-build-isolation --target /tmp/site "$sdist" 2>&1 | grep -vi warning | tail -2
  done
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v WARNING | tail -2
python3 -c "import torch, lightning, transformers; print('torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__)"
python3 -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1

# each part gets what remains of the budget, at most its own cap, at least 1 s (timeout 0 would mean none)
cap() { local l=$(( ${GPU_CHECK_BUDGET:-560} - SECONDS )); (( l < 1 )) && l=1; (( l > $1 )) && l=$1; echo $l; }

echo "== 1. training step, 1B, seq 4096, micro batch 4 (no activation checkpointing), bf16 autocast"
timeout $(cap 110) python3 benchmarks/bench_model.py --preset olmo2_1b --seq 4096 \
  --batch 4 --steps 5 --warmup 3 --rounds 1 --precisions bf16
echo "== 1b. the same with torch.compile per block, against our eager model, and the compilation time"
timeout $(cap 150) python3 benchmarks/bench_model.py --preset olmo2_1b --seq 4096 \
  --batch 4 --steps 5 --warmup 3 --rounds 1 --precisions bf16 --compile --peers olmo2_lit

echo "== 2. strategies on one GPU: DDP, FSDP2, FSDP, DeepSpeed ZeRO-2/3 (a few steps each)"
timeout $(cap 240) python3 benchmarks/gpu_scaleout.py 2>&1 | tail -30

echo "== 3. parity with transformers on CUDA (1B widths, 2 layers), and the fused loss under bf16"
timeout $(cap 60) python3 benchmarks/gpu_parity.py

echo "== 4. CUDA-marked tests and the model/loss suites on the GPU machine"
timeout $(cap 150) python3 -m pytest -q -p no:warnings -rs tests/model \
  tests/test_hf_parity.py tests/data/test_document_masking.py tests/training/test_initial_weights.py \
  -x 2>&1 | tail -6
echo "== 4b. checkpoint directories of FSDP v1 and DeepSpeed ZeRO-3 published atomically and resumed"
timeout $(cap 120) python3 -m pytest -q -p no:warnings -rs -m requires_cuda \
  tests/training/test_atomic_sharded_save.py 2>&1 | tail -4
echo "== done at ${SECONDS}s"
