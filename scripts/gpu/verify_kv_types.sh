#!/usr/bin/env bash
# On the GPU machine: the KV types brought to the GPU in the sixteenth session (q4_1, q5_0, q5_1, iq4_nl and
# their *h forms; RotorQuant's planar3_0 ... iso4_c): rotor-check-attention (decode and prefill kernels, or
# the prefill refusal, against a double reference), rotor-check-cuda (stored bytes against the CPU's, attention
# against double, the kjv models end to end, fused decode bit for bit), then decode at batch 1 on
# Qwen3.5-27B and Llama-3.1-8B per KV type (BENCH_KVS, default "iso3_0 planar4_0"; contexts BENCH_CTXS,
# default 0,32768). Models: carry/gpu as cuda_run.sh check says.
targets="rotor-check-attention rotor-check-cuda rotor-bench-cuda"
source "$(dirname "$0")/verify_common.sh"
{
  RUN_LIMIT=200 run build-gpu/rotor-check-attention --no-bench
  grep -E "^(PASS|FAIL)" /tmp/run.txt | grep -E "q4_1|q5_0|q5_1|iq4_nl|planar|iso" | awk '{print $1, $2}' | sort | uniq -c
  RUN_LIMIT=260 run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  grep -E "planar|iso[34]" /tmp/run.txt | head -n 60
  for kv in ${BENCH_KVS:-iso3_0 planar4_0}; do
    echo "== bench $kv"
    timeout 100 build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1 --ctxs "${BENCH_CTXS:-0,32768}" --prompts 512 \
      --kv "$kv" --shapes qwen3.5-27b,llama-3.1-8b 2>&1 | grep -E "^\| (qwen|llama)" || status=1
  done
} 2>&1 | tee -a "$out/verify_kv_types.txt"
exit $status
