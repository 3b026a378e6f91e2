#!/usr/bin/env bash
# On the GPU machine: decode tok/s (batch 1, context 0) of three Q4_K_M-mix shapes for several values of
# ROTOR_MMVQ_FILL, the least fill of the resident warps' rounds at which the automatic int8 mat-vec
# choice takes kernel 3 (matvec_q8.cu, launch_type_direct); 80 twice, to show the noise. Builds build-gpu/.
set -uo pipefail
cd "$(dirname "$0")/../.."
arch=${ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DROTOR_ENGINE_ONLY=ON -DROTOR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$arch >/dev/null
cmake --build build-gpu -j "$(nproc)" --target rotor-bench-cuda 2>&1 | grep -E "error" || true
out=${OUT:-out}
mkdir -p "$out"
for f in 80 50 0 80; do
  echo "== ROTOR_MMVQ_FILL=$f"
  ROTOR_MMVQ_FILL=$f timeout 150 build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1 --ctxs 0 --prompts 512 \
    --shapes llama-3.1-8b,qwen2.5-32b,qwen3.5-27b 2>&1 | grep -E "\| 1 \|"
done 2>&1 | tee "$out/mmvq_fill.txt"
