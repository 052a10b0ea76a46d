#!/usr/bin/env bash
# Every GPU check in one script, for a lent H100/H200 (see docs/gpu.md for what it printed).
# Run from the repository root; .whl/ carries the pure-Python wheels the GPU image lacks.
set -u
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
REPO=$(pwd)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v WARNING | tail -2
python3 -c "import torch, lightning, transformers; print('torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__)"

echo "== 1. CUDA-marked tests and the model/HF/training suites on the GPU machine"
python3 -m pytest -q -p no:warnings -rs tests/model tests/test_hf_parity.py tests/test_loss.py tests/data/test_document_masking.py 2>&1 | tail -8

echo "== 2. bf16 parity of our model against transformers on CUDA (1B shape, 2 layers)"
python3 benchmarks/gpu_parity.py

echo "== 3. training-step throughput, 1B, seq 4096, micro batch 2, bf16: ours vs transformers"
python3 benchmarks/bench_model.py --preset olmo2_1b --seq 4096 --batch 2 --steps 6 --warmup 3 --precisions bf16
echo "== 3b. the same with torch.compile per block (ours only changes)"
timeout 150 python3 benchmarks/bench_model.py --preset olmo2_1b --seq 4096 --batch 2 --steps 6 --warmup 3 --precisions bf16 --compile

echo "== 4. the quickstart recipe on the GPU, bf16-mixed, 40 steps"
mkdir -p /tmp/qs && cd /tmp/qs && timeout 120 olmo2-lit fit --config "$REPO/experiments/quickstart.yaml" \
  --trainer.accelerator gpu --trainer.precision bf16-mixed --trainer.max_steps 40 \
  --trainer.enable_progress_bar false 2>&1 | grep -vE "Warning|warn" | tail -25
