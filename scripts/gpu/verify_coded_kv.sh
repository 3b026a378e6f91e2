#!/usr/bin/env bash
# On the GPU machine: the coded KV types (tcq2-4, tbq2-4, tbq2nc-4nc) on the GPU: kv_turbo.cu's encoder,
# attention.cu's split-K kernel and attention_decode_tcq.cu's tensor-core decode kernel over them.
#   PART=checks (default): rotor-check-attention (decode cases on both kernels, prefill refusals, keys
#     from values), rotor-check-cuda (stored rows equal to the CPU's bytes, attention against double, models
#     end to end and fused decode with tcq / tbq caches), rotor-check-qwen35, rotor-check-gemma4.
#   PART=bench: the per-layer decode attention table, then decode of Qwen3.5-27B and Llama-3.1-8B at
#     batch 1 and contexts 0 / 32K / 112K per KV type (BENCH_KVS, default f16 q4_0h tbq4 tbq3 tcq4).
# Models: carry/gpu as cuda_run.sh check says.
if [ "${PART:-checks}" = checks ]; then
  targets="rotor-check-attention rotor-check-cuda rotor-check-qwen35 rotor-check-gemma4"
else
  targets="rotor-check-attention rotor-bench-cuda"
fi
source "$(dirname "$0")/verify_common.sh"
{
  if [ "${PART:-checks}" = checks ]; then
    RUN_LIMIT=200 run build-gpu/rotor-check-attention --no-bench
    grep -E "tbq|tcq / tbq" /tmp/run.txt | grep -vE "^PASS   split-K" | head -n 40
    RUN_LIMIT=300 run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
    grep -E "tbq|tcq" /tmp/run.txt | head -n 60
    RUN_LIMIT=60 run build-gpu/rotor-check-qwen35 "${q[@]}"
    grep -E "tbq|tcq" /tmp/run.txt
    RUN_LIMIT=100 run build-gpu/rotor-check-gemma4 "${g[@]}"
    grep -E "tcq" /tmp/run.txt | head
  else
    echo "== rotor-check-attention --decode-only --bench-only --reps 10"
    timeout 150 build-gpu/rotor-check-attention --decode-only --bench-only --reps 10 2>&1 | grep -E "^\||^##" || status=1
    for kv in ${BENCH_KVS:-f16 q4_0h tbq4 tbq3 tcq4}; do
      echo "== bench $kv"
      timeout 120 build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1 --ctxs 0,32768,114688 --prompts 512 \
        --kv "$kv" --shapes qwen3.5-27b,llama-3.1-8b 2>&1 | grep -E "^\| (qwen|llama)" || status=1
    done
  fi
} 2>&1 | tee -a "$out/verify_coded_kv.txt"
exit $status
