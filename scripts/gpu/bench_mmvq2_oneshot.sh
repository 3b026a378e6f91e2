#!/usr/bin/env bash
# On the GPU machine: decode tok/s of three Q4_K_M-mix shapes at 1-16 slots (context 0) with the int8
# mat-vec's kernel 2 as it chose before (ROTOR_MMVQ2_ONESHOT=0: rows per warp and teams by its cost
# model, persistent grid) and with two rows per warp and a one-shot grid for every token count
# (ROTOR_MMVQ2_ONESHOT=1; matvec_q8.cu, k2_one_shot; the default now takes it for 2-4 tokens).
# Builds build-gpu/.
set -uo pipefail
cd "$(dirname "$0")/../.."
arch=${ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
out=${OUT:-out}
mkdir -p "$out"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DROTOR_ENGINE_ONLY=ON -DROTOR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
cmake --build build-gpu -j "$(nproc)" --target rotor-bench-cuda 2>&1 | grep -E "error" || true
for env in ROTOR_MMVQ2_ONESHOT=0 ROTOR_MMVQ2_ONESHOT=1; do
  echo "== $env"
  timeout 120 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1,2,4,8,16 --ctxs 0 --prompts 512 \
    --shapes llama-3.1-8b,qwen2.5-32b,qwen3.5-27b 2>&1 | grep -E "\| 0 \| [0-9]+ \|"
done 2>&1 | tee "$out/mmvq2_oneshot.txt"
