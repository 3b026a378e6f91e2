#!/usr/bin/env bash
# On the GPU machine: the f16 tensor-core mat-vec (version 3, matvec_mma_f16.cu) for q4_K / q6_K and 1-16
# tokens. rotor-check-cuda with ROTOR_MMQ=1 (every q4_K / q6_K launch of 1-16 tokens on version 3: its
# "mmq-f16" lines, split and unsplit, and every model end to end), the q4_K / q6_K table of
# rotor-bench-cuda --matvec-only (dp4a, version 2 and version 3 at 2-16 tokens), then decode at
# BATCHES slots with the defaults against ROTOR_MMQ_F16=0. Models: carry/gpu as cuda_run.sh check says.
#   SHAPES=qwen3.5-27b,llama-3.1-8b (default), KV=f16, BATCHES=1,8,16; CHECKS=0 skips rotor-check-cuda,
#   MODELS=0 the decode runs (ENVS: the settings compared); CHECK_MODELS=1 adds rotor-check-qwen35 / -gemma4 with ROTOR_MMQ=1
targets="rotor-check-cuda rotor-bench-cuda"
[ "${CHECK_MODELS:-0}" = 0 ] || targets="$targets rotor-check-qwen35 rotor-check-gemma4"
source "$(dirname "$0")/verify_common.sh"
{
  [ "${CHECKS:-1}" = 0 ] || run env ROTOR_MMQ=1 build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  echo "$(grep -cE '^PASS .*(mmq-f16|matmul_multi mmq)' /tmp/run.txt) mmq-f16 / matmul_multi mmq lines passed"
  if [ "${CHECK_MODELS:-0}" != 0 ]; then
    run env ROTOR_MMQ=1 build-gpu/rotor-check-qwen35 "${q[@]}"
    run env ROTOR_MMQ=1 build-gpu/rotor-check-gemma4 "${g[@]}"
  fi
  echo "== rotor-bench-cuda --matvec-only --quick: q4_K at 2-16 tokens"
  timeout 240 build-gpu/rotor-bench-cuda --matvec-only --quick 2>&1 | sed -n '/^GPU:/p;/^q4_K \/ q6_K, 2-16 tokens/,/quantize activations/p' || status=1
  [ "${MODELS:-1}" = 0 ] || for env in ${ENVS:-ROTOR_MMQ_F16=0 ROTOR_MMQ_F16=1}; do
    echo "== bench $env"
    timeout 200 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --kv "${KV:-f16}" --batches "${BATCHES:-1,8,16}" --ctxs 0 \
      --prompts 512 --shapes "${SHAPES:-qwen3.5-27b,llama-3.1-8b}" 2>&1 | grep -E "^\| (qwen|llama)" || status=1
  done
} 2>&1 | tee "$out/verify_mmq_f16.txt"
exit $status
