#!/usr/bin/env bash
# On the GPU machine: the int8 mat-vec under several environment settings, e.g.
#   ENVS="ROTOR_MMVQ_Q6_ALIGNED=0 ROTOR_MMVQ_Q6_ALIGNED=1" (one setting per word; a,b for two at once)
# For each: the mat-vec table alone at $MV_TOKENS tokens (default 1), then decode tok/s (batch 1, context
# 0) of $SHAPES (three Q4_K_M-mix shapes by default). Builds build-gpu/ (verify_common.sh).
targets="rotor-bench-cuda"
source "$(dirname "$0")/verify_common.sh"
{
  for e in ${ENVS:-ROTOR_MMVQ=0}; do
    IFS=, read -ra kv <<<"$e"
    echo "== $e: mat-vec alone"
    env "${kv[@]}" timeout 200 build-gpu/rotor-bench-cuda --matvec-only --quick --mv-tokens "${MV_TOKENS:-1}" 2>&1 |
      grep -E "^\| (8B|32B|Qwen|q[0-9]|matrix)" || status=1
    echo "== $e: decode"
    env "${kv[@]}" timeout 150 build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1 --ctxs 0 --prompts 512 \
      --shapes "${SHAPES:-llama-3.1-8b,qwen2.5-32b,qwen3.5-27b}" 2>&1 | grep -E "\| 1 \|" || status=1
  done
} 2>&1 | tee "$out/mmvq_env.txt"
exit $status
