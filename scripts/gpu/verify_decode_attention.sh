#!/usr/bin/env bash
# On the GPU machine: the tensor-core decode attention (src/cuda/attention_decode.cu) and the merge
# kernel of attention.cu.
#   PART=checks (default): rotor-check-attention's decode cases (FULL=1: all its checks), its decode
#     benchmark table (tensor-core kernel per split size against the CUDA-core kernel, per layer),
#     rotor-check-cuda (end-to-end logits with every KV type), rotor-check-qwen35, rotor-check-gemma4.
#   PART=bench: decode of whole models at 0 / 32K / 112K context per KV type (BENCH_KVS, default
#     q4_0h q8_0 f16; SHAPES, default qwen3.5-27b,llama-3.1-8b) and 1 / 4 / 16 slots.
#   PART=tune: the decode checks (f16 on the tensor-core kernel, forced splits, lean), the per-layer
#     table with the split sweep, split rule 1 with and without its refinement to multiples of 64 and
#     the lean variant, then Qwen3.5-27B / Llama-3.1-8B decode at 0 / 32K / 112K with the defaults and
#     ROTOR_DECODE_SPLIT_FINE=0, and Qwen3.5-27B with f16 KV: what decides the next defaults.
#   PART=final: the decode checks, then decode at 0 / 32K (/ 112K) and prefill of 512 / 8K tokens,
#     4-bit rotated against f16 KV, for Qwen3.5-27B, Llama-3.1-8B and Qwen2.5-32B; last the per-layer
#     decode attention table (with the lean variant).
# Models: carry/gpu as cuda_run.sh check says.
if [ "${PART:-checks}" = checks ]; then
  targets="rotor-check-attention rotor-check-cuda rotor-check-qwen35 rotor-check-gemma4"
elif [ "${PART}" = final ] || [ "${PART}" = tune ]; then
  targets="rotor-check-attention rotor-bench-cuda"
else
  targets="rotor-bench-cuda"
fi
source "$(dirname "$0")/verify_common.sh"
{
  if [ "${PART:-checks}" = checks ]; then
    run build-gpu/rotor-check-attention --decode-only --no-bench
    [ -z "${FULL:-}" ] || RUN_LIMIT=300 run build-gpu/rotor-check-attention --no-bench
    echo "== rotor-check-attention --decode-only --bench-only"
    timeout 200 build-gpu/rotor-check-attention --decode-only --bench-only --reps 20 2>&1 | grep -E "^\||^##" || status=1
    run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
    run build-gpu/rotor-check-qwen35 "${q[@]}"
    run build-gpu/rotor-check-gemma4 "${g[@]}"
  elif [ "${PART}" = tune ]; then
    run build-gpu/rotor-check-attention --decode-only --no-bench
    echo "== rotor-check-attention --decode-only --bench-only"
    timeout 200 build-gpu/rotor-check-attention --decode-only --bench-only --reps 10 2>&1 | grep -E "^\||^##" || status=1
    for env in "" "ROTOR_DECODE_SPLIT_FINE=0"; do
      echo "== bench q4_0h ${env:-(defaults)}"
      timeout 200 env $env build-gpu/rotor-bench-cuda --quick --no-matvec --kv q4_0h --batches 1 --ctxs 0,32768,114688 \
        --prompts 512 --shapes qwen3.5-27b,llama-3.1-8b 2>&1 | grep -E "^\| (qwen|llama)" || status=1
    done
    echo "== bench f16 (defaults)"
    timeout 200 build-gpu/rotor-bench-cuda --quick --no-matvec --kv f16 --batches 1 --ctxs 32768,114688 \
      --prompts 512 --shapes qwen3.5-27b 2>&1 | grep -E "^\| (qwen|llama)" || status=1
  elif [ "${PART}" = final ]; then
    run build-gpu/rotor-check-attention --decode-only --no-bench
    b() { echo "== bench $*"; timeout 200 build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1 "$@" 2>&1 | grep -E "^\|" || status=1; }
    b --kv q4_0h --shapes qwen3.5-27b --ctxs 0,32768,114688 --prompts 512,8192
    b --kv f16 --shapes qwen3.5-27b --ctxs 32768 --prompts 512,8192
    b --kv q4_0h --shapes llama-3.1-8b,qwen2.5-32b --ctxs 0,32768 --prompts 512,8192
    b --kv f16 --shapes llama-3.1-8b,qwen2.5-32b --ctxs 0,32768 --prompts 512,8192
    echo "== rotor-check-attention --decode-only --bench-only"
    timeout 150 build-gpu/rotor-check-attention --decode-only --bench-only --reps 10 2>&1 | grep -E "^\||^##" || status=1
  else
    for kv in ${BENCH_KVS:-q4_0h q8_0 f16}; do
      echo "== bench $kv"
      timeout 240 build-gpu/rotor-bench-cuda --quick --no-matvec --kv $kv --batches "${BATCHES:-1,4,16}" \
        --ctxs 0,32768,114688 --prompts 512 --shapes "${SHAPES:-qwen3.5-27b,llama-3.1-8b}" 2>&1 | grep -E "^\|" || status=1
    done
  fi
} 2>&1 | tee -a "$out/verify_decode_attention.txt"
exit $status
