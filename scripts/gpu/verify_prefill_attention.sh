#!/usr/bin/env bash
# On the GPU machine: the tensor-core prefill attention (src/cuda/attention_prefill.cu).
#   PART=checks (default): rotor-check-attention (prefill cases against the exact reference, then the
#     decode cases), then rotor-check-qwen35, rotor-check-gemma4 and rotor-check-cuda end to end (they
#     give the prefill kernel prompt runs of 16+ tokens).
#   PART=bench: rotor-check-attention's prefill table (per layer, against split-K), then prefill of
#     whole models at 512 / 8K / 32K tokens, 4-bit rotated against f16 KV (SHAPES, default
#     qwen3.5-27b,llama-3.1-8b,qwen2.5-32b); ROTOR_PREFILL_ATTENTION=0 in the environment for the
#     split-K kernel instead.
# Models: carry/gpu as cuda_run.sh check says.
if [ "${PART:-checks}" = checks ]; then
  targets="rotor-check-attention rotor-check-cuda rotor-check-qwen35 rotor-check-gemma4"
else
  targets="rotor-check-attention rotor-bench-cuda"
fi
source "$(dirname "$0")/verify_common.sh"
{
  if [ "${PART:-checks}" = checks ]; then
    run build-gpu/rotor-check-attention --no-bench
    grep -cE "^PASS" /tmp/run.txt | sed 's/$/ lines passed/'
    run build-gpu/rotor-check-qwen35 "${q[@]}"
    run build-gpu/rotor-check-gemma4 "${g[@]}"
    run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  else
    echo "== rotor-check-attention --bench-only (prefill table)"
    timeout "${RUN_LIMIT:-240}" build-gpu/rotor-check-attention --bench-only --reps 5 2>&1 |
      sed '/## Decode attention/,$d' | grep -E "^\||^#" || status=1
    for kv in ${BENCH_KVS:-q4_0h f16}; do
      echo "== prefill $kv"
      timeout 300 build-gpu/rotor-bench-cuda --quick --no-matvec --kv "$kv" --batches 1 --ctxs 0 \
        --prompts 512,8192,32768 --shapes "${SHAPES:-qwen3.5-27b,llama-3.1-8b,qwen2.5-32b}" 2>&1 |
        grep -E "^\|" || status=1
    done
  fi
} 2>&1 | tee "$out/verify_prefill_attention_${PART:-checks}.txt"
exit $status
