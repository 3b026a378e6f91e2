#!/usr/bin/env bash
# On the GPU machine: the paths that switches choose between, each checked, then the benchmarks that
# compare them. Builds build-gpu/ itself (cuda_run.sh's targets). Since the 2026-11-28 H200 run
# (bench/RESULTS.md, "Switches verified") the newer paths are the defaults and the switches select the
# first ones:
#   int8 mat-vec       ROTOR_MMVQ=1 (first kernel) / 2 (team-split, default)   matvec_q8.cu g_kernel
#   fused llama decode ROTOR_FUSED_DECODE=0 / 1 (default)                     kernels.cu g_fused_decode
#   Qwen3.5 fast path  ROTOR_QWEN35_FAST=0 / 1 (default); rotor-check-qwen35 --no-fast
#   tensor-core int8 mat-vec for 9-16 tokens of q4_K / q6_K  ROTOR_MMQ=1 (matvec_mma.cu; off: v1 correct but slower, v2 unchecked;
#                      rotor-check-cuda's "mmq" lines check it whatever the switch)
# Still off: prefill attention (ROTOR_PREFILL_ATTENTION=1, attention_prefill.cu: fails end to end on
# f16 rounding, bench/RESULTS.md) and moe.cu's compile-time kGpwTwoWaves.
# Models: carry/gpu as cuda_run.sh check says.
#   SHAPES=llama-3.1-8b,qwen3.5-27b,gemma-4-26b-a4b (default)
targets="rotor-check-cuda rotor-bench-cuda rotor-check-qwen35 rotor-check-gemma4 rotor-check-moe"
source "$(dirname "$0")/verify_common.sh"
{
  run env ROTOR_FUSED_DECODE=0 ROTOR_MMVQ=1 build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  run env ROTOR_MMVQ=1 build-gpu/rotor-check-qwen35 --no-fast "${q[@]}"
  run env ROTOR_MMVQ=1 build-gpu/rotor-check-gemma4 "${g[@]}"
  run env ROTOR_MMVQ=1 build-gpu/rotor-check-moe
  run env ROTOR_MMQ=1 build-gpu/rotor-check-qwen35 "${q[@]}"
  run env ROTOR_MMQ=1 build-gpu/rotor-check-gemma4 "${g[@]}"
  echo "== rotor-bench-cuda --matvec-only --quick: the 16-token lines compare ROTOR_MMQ=1"
  timeout 200 build-gpu/rotor-bench-cuda --matvec-only --quick 2>&1 | grep -E "\| 16 \|" || status=1
  echo "== rotor-check-qwen35 --bench (default and fast Gated DeltaNet kernels)"
  build-gpu/rotor-check-qwen35 --bench 2>&1 | grep -E "decode|prefill" | tail -n 20
  for env in "ROTOR_MMVQ=1 ROTOR_FUSED_DECODE=0 ROTOR_QWEN35_FAST=0" "" "ROTOR_MMQ=1"; do
    echo "== bench ${env:-(defaults)}"
    timeout 200 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1,16 --ctxs 0 --prompts 512 \
      --shapes "${SHAPES:-llama-3.1-8b,qwen3.5-27b,gemma-4-26b-a4b}" 2>&1 | grep -E "^\|" || status=1
  done
} | tee "$out/verify_switches.txt"
exit $status
