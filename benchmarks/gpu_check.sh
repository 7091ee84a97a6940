#!/usr/bin/env bash
# GPU check for a lent GPU machine: the alignment-faking suite through vLLM (GPU build) and through
# inspect's stock hf/ provider, with the same figures as benchmarks/eval_throughput.py
# (samples/min, tokens/s, TTFT, peak memory, MFU against the measured fp32 matmul peak).
#
# Self-contained and offline: nothing is fetched.  It needs, already on the machine,
#   .venv        afcu + inspect (make setup; on a GPU box torch must be a CUDA build), and
#   a vLLM python: .venv-vllm (make setup-vllm picks the `vllm` GPU build where nvidia-smi exists)
#                  or AFCU_VLLM_PYTHON=/path/to/python, or vllm importable from .venv.
# The whole check is capped at 7.5 minutes (server start-up included).
#
# Multi-GPU nodes: one model split over N GPUs with tensor parallelism:
#   AFCU_ENGINE_TENSOR_PARALLEL_SIZE=N benchmarks/gpu_check.sh
# (the same variable works for `afcu eval`; afcu passes --tensor-parallel-size N to the server).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
LIMIT_S=${LIMIT_S:-450}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# A private state folder: this check starts its own server and stops it at exit.
AFCU_ENGINE_DIR=$(mktemp -d)
export AFCU_ENGINE_DIR

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_check: no nvidia-smi here; run benchmarks/eval_throughput.py on CPU machines" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ ! -x "$PY" ]; then
  echo "gpu_check: $PY missing; run \`make setup\` first (or set PY=/path/to/python with afcu installed)" >&2
  exit 2
fi
"$PY" - <<'EOF'
import sys
import torch
from afcu.engine import vllm_python
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch in this environment has no CUDA; install a CUDA torch build into it")
if vllm_python() is None:
    sys.exit("gpu_check: no vLLM found; run `make setup-vllm` on this machine or set AFCU_VLLM_PYTHON")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, vLLM python {vllm_python()}")
EOF

# 32 queries x 2 tiers, 256 tokens: large enough to fill a GPU batch, small enough for the time cap.
timeout --signal=INT "$LIMIT_S" "$PY" benchmarks/eval_throughput.py \
  --n-queries "${N_QUERIES:-32}" --max-tokens "${MAX_TOKENS:-256}" --max-connections 64 \
  --out runs/bench-gpu --overwrite
