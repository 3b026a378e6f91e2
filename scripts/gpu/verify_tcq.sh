#!/usr/bin/env bash
# On the GPU machine: rotor's trellis-coded KV types on the GPU (src/cuda/kv_trellis.cu: the encoder,
# attention.cu: the split-K kernel reading them). PART=checks runs rotor-check-attention (split-K over
# random tcq rows, prefill refusals, keys from values), rotor-check-cuda (kv_store bytes equal to the
# CPU's, attention, qkv_prep, models against the CPU with a tcq cache, fused decode bit for bit) and
# rotor-check-gemma4 (tcq3 over rings and heads of 512) and rotor-check-qwen35 (the hybrid models with a tcq4
# cache) whole, and shows their tcq lines; PART=bench
# runs Qwen3.5-27B (Q4_K_M mix) at batch 1 with q4_0h, tcq4 and tcq3 KV: decode at contexts 0, 32K and
# 112K and a 512-token prompt. Default: both. Models: carry/gpu as cuda_run.sh check says.
targets="rotor-check-cuda rotor-bench-cuda rotor-check-gemma4 rotor-check-attention rotor-check-qwen35"
source "$(dirname "$0")/verify_common.sh"
part=${PART:-all}
{
  if [ "$part" != bench ]; then
    run build-gpu/rotor-check-attention --no-bench
    grep -E "tcq" /tmp/run.txt | grep -vE "^PASS   split-K" | head -n 80
    run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
    grep -E "tcq" /tmp/run.txt
    run build-gpu/rotor-check-gemma4 "${g[@]}"
    grep -E "tcq" /tmp/run.txt
    run build-gpu/rotor-check-qwen35 "${q[@]}"
    grep -E "tcq" /tmp/run.txt
  fi
  if [ "$part" != checks ]; then
    for kv in q4_0h tcq4 tcq3; do
      echo "== bench $kv"
      timeout "${BENCH_LIMIT:-150}" build-gpu/rotor-bench-cuda --quick --no-matvec --kv $kv --batches 1 \
        --ctxs 0,32768,114688 --prompts 512 --shapes qwen3.5-27b 2>&1 | grep -E "^\| qwen|wrote|rror" || status=1
    done
  fi
} 2>&1 | tee "$out/verify_tcq.txt"
exit $status
