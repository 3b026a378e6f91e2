#!/usr/bin/env bash
# On the GPU machine: the checks and benchmarks that decide whether the tensor-core int8 mat-vec for
# 9-16 tokens (matvec_mma.cu, ROTOR_MMQ=1) becomes the default, and rotor-check-cuda with the current
# defaults (its "mmq" lines check the kernel whatever the switch; its synthetic models cover the
# one-block-per-row f32 mat-vec of kernels.cu). Models: carry/gpu as cuda_run.sh check says.
#   SHAPES=llama-3.1-8b,qwen3.5-27b (default)
targets="rotor-check-cuda rotor-bench-cuda rotor-check-qwen35 rotor-check-gemma4"
source "$(dirname "$0")/verify_common.sh"
{
  # QUICK=1: only the ROTOR_MMQ=1 run of rotor-check-cuda (its 1-8 token paths are the defaults)
  [ -n "${QUICK:-}" ] || run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  run env ROTOR_MMQ=1 build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  if [ -z "${QUICK:-}" ]; then
    run env ROTOR_MMQ=1 build-gpu/rotor-check-qwen35 "${q[@]}"
    run env ROTOR_MMQ=1 build-gpu/rotor-check-gemma4 "${g[@]}"
  fi
  echo "== rotor-bench-cuda --matvec-only --quick: the 16-token lines compare ROTOR_MMQ=1"
  timeout 200 build-gpu/rotor-bench-cuda --matvec-only --quick 2>&1 | grep -E "GPU:|\| (1|8|16) \|" || status=1
  for env in "" "ROTOR_MMQ=1"; do
    echo "== bench ${env:-(defaults)}"
    timeout 200 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1,8,16 --ctxs 0 --prompts 512 \
      --shapes "${SHAPES:-llama-3.1-8b,qwen3.5-27b}" 2>&1 | grep -E "^\|" || status=1
  done
} 2>&1 | tee "$out/verify_mmq.txt"
exit $status
