#!/usr/bin/env bash
# On the GPU machine: the tensor-core decode attention (src/cuda/attention_decode.cu) and the merge
# kernel of attention.cu. PART=checks (default): rotor-check-attention's decode cases and all its
# other checks, the decode benchmark table (tensor-core vs CUDA-core kernel per layer), rotor-check-cuda
# (end-to-end logits with every KV type). PART=models: rotor-check-qwen35 / rotor-check-gemma4 and the
# decode benchmark of whole models at 0 / 32K / 112K context (BENCH_KVS, default q4_0h f16).
# Models: carry/gpu as cuda_run.sh check says.
targets="rotor-check-attention rotor-check-cuda rotor-check-qwen35 rotor-check-gemma4 rotor-bench-cuda"
source "$(dirname "$0")/verify_common.sh"
{
  if [ "${PART:-checks}" = checks ]; then
    run build-gpu/rotor-check-attention --decode-only --no-bench
    RUN_LIMIT=300 run build-gpu/rotor-check-attention --no-bench
    echo "== rotor-check-attention --decode-only --bench-only"
    timeout 200 build-gpu/rotor-check-attention --decode-only --bench-only --reps 20 2>&1 | grep -E "^\||^##" || status=1
    run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  else
    run build-gpu/rotor-check-qwen35 "${q[@]}"
    run build-gpu/rotor-check-gemma4 "${g[@]}"
    for kv in ${BENCH_KVS:-q4_0h f16}; do
      echo "== bench $kv"
      timeout 240 build-gpu/rotor-bench-cuda --quick --no-matvec --kv $kv --batches 1 --ctxs 0,32768,114688 \
        --prompts 512 --shapes "${SHAPES:-qwen3.5-27b,llama-3.1-8b}" 2>&1 | grep -E "^\|" || status=1
    done
  fi
} 2>&1 | tee -a "$out/verify_decode_attention.txt"
exit $status
