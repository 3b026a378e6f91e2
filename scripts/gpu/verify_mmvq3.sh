#!/usr/bin/env bash
# On the GPU machine: the checks and benchmarks of the int8 mat-vec's kernel 3 (matvec_q8.cu: q4_K /
# q5_K / q6_K read straight into registers, 1-4 tokens; ROTOR_MMVQ=3) and of the automatic choice
# between kernels 2 and 3 (the default). rotor-check-cuda checks kernels 1, 2 and 3 whatever the
# default (its "k3" lines and the synthetic q4_k_m / q5_k / q6_k models with kernel 3) and the
# defaults; the Qwen3.5 and Gemma 4 checks run with MMVQ_ENV; the mat-vec sweep (SWEEP=1) compares
# the kernels per matrix, the model benchmark the defaults against MMVQ_ENV per step, then Qwen3.5-27B
# with the q4_0h cache at 0, 32K and 112K context.
# Models: carry/gpu as cuda_run.sh check says.
#   SHAPES=llama-3.1-8b,qwen2.5-32b,qwen3.5-27b   MMVQ_ENV="ROTOR_MMVQ=3"   SWEEP=1   BATCHES=1,4
targets="rotor-check-cuda rotor-bench-cuda rotor-check-qwen35 rotor-check-gemma4"
source "$(dirname "$0")/verify_common.sh"
cand=${MMVQ_ENV:-ROTOR_MMVQ=3}
{
  run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  grep -E " k3 " /tmp/run.txt | head -n 6
  run env $cand build-gpu/rotor-check-qwen35 "${q[@]}"
  run env $cand build-gpu/rotor-check-gemma4 "${g[@]}"
  if [ "${SWEEP:-1}" = 1 ]; then
    echo "== rotor-bench-cuda --matvec-only --quick --sweep (columns: % of copy bw per kernel)"
    timeout 240 build-gpu/rotor-bench-cuda --matvec-only --quick --sweep 2>&1 | grep -E "GPU:|^\|" | grep -vE "\| 8 \|" || status=1
  fi
  for env in "" "$cand"; do
    echo "== bench ${env:-(defaults)}"
    timeout 240 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --batches "${BATCHES:-1,4}" --ctxs 0 --prompts 512 \
      --shapes "${SHAPES:-llama-3.1-8b,qwen2.5-32b,qwen3.5-27b}" 2>&1 | grep -E "^\|" || status=1
  done
  echo "== bench (defaults) qwen3.5-27b, q4_0h cache, context 0 / 32K / 112K"
  timeout 240 build-gpu/rotor-bench-cuda --no-matvec --batches 1 --ctxs 0,32768,114688 --prompts 512 --kv q4_0h \
    --shapes qwen3.5-27b 2>&1 | grep -E "^\|" || status=1
} 2>&1 | tee "$out/verify_mmvq3.txt"
exit $status
