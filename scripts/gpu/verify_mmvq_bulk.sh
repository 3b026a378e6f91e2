#!/usr/bin/env bash
# On the GPU machine: kernel 4 of the int8 mat-vec (one token, tiles of whole rows by bulk copies,
# matvec_bulk.cu; only when forced) and the decode attention defaults. First the one-token mat-vec table
# of rotor-bench-cuda --matvec-only (the default against ROTOR_MMVQ=4), then decode at context 0 with
# the default and ROTOR_MMVQ=4, then rotor-check-cuda (kernel 4 in its "k4" lines, the f16 KV cache on
# the tensor-core decode kernel end to end) and rotor-check-qwen35 / -gemma4. Models: carry/gpu as
# cuda_run.sh check says.
#   SHAPES=qwen3.5-27b,llama-3.1-8b,qwen2.5-32b (default), KV=q4_0h; CHECKS=0 skips the checks,
#   MODELS=0 the decode runs, MATVEC=0 the mat-vec table; RTS="0 1 2 8" repeats the table with
#   ROTOR_MMVQ_BULK_RT (rows per tile; 0 = kernel 4's own choice).
targets="rotor-check-cuda rotor-bench-cuda rotor-check-qwen35 rotor-check-gemma4"
source "$(dirname "$0")/verify_common.sh"
{
  if [ "${MATVEC:-1}" != 0 ]; then
    for rt in ${RTS:-0}; do
      echo "== rotor-bench-cuda --matvec-only --quick: one token, ROTOR_MMVQ_BULK_RT=$rt"
      timeout 150 env ROTOR_MMVQ_BULK_RT=$rt build-gpu/rotor-bench-cuda --matvec-only --quick 2>&1 |
        grep -E "^GPU|^\| matrix|\| (q4_K|q6_K|q5_K) \|.*\| 1 \|" | head -40 || status=1
    done
  fi
  [ "${MODELS:-1}" = 0 ] || for env in ROTOR_MMVQ=0 ROTOR_MMVQ=4; do
    echo "== bench $env"
    timeout 150 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --kv "${KV:-q4_0h}" --batches 1 --ctxs 0 \
      --prompts 512 --shapes "${SHAPES:-qwen3.5-27b,llama-3.1-8b,qwen2.5-32b}" 2>&1 | grep -E "^\| (qwen|llama)" || status=1
  done
  if [ "${CHECKS:-1}" != 0 ]; then
    run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
    echo "$(grep -cE '^PASS .* k4 ' /tmp/run.txt) k4 lines passed"
    run build-gpu/rotor-check-qwen35 "${q[@]}"
    run build-gpu/rotor-check-gemma4 "${g[@]}"
  fi
} 2>&1 | tee "$out/verify_mmvq_bulk.txt"
exit $status
