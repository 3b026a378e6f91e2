#!/usr/bin/env bash
# On the GPU machine: the chunked gated delta rule (src/cuda/delta_net_chunked.cu).
#   PART=checks (default): rotor-check-qwen35 (its model checks run prompts through the chunked kernels, and
#     (e) compares them with the token-by-token kernel on random Qwen3.5-27B-shaped layers) with its --bench
#     table of the DeltaNet kernels, then rotor-check-attention --no-bench.
#   PART=bench: prefill of qwen3.5-27b (SHAPES) at PROMPTS (default 512,8192,32768) tokens with the q4_0h cache,
#     ROTOR_GDN_CHUNKED=0 (token by token) against 1 (chunked), in one run each.
# Models: carry/gpu as cuda_run.sh check says.
if [ "${PART:-checks}" = checks ]; then
  targets="rotor-check-qwen35 rotor-check-attention"
else
  targets="rotor-bench-cuda"
fi
source "$(dirname "$0")/verify_common.sh"
{
  if [ "${PART:-checks}" = checks ]; then
    run build-gpu/rotor-check-qwen35 "${q[@]}" --bench
    grep -E "chunked delta rule|DeltaNet kernels|decode |prefill |prompt \+" /tmp/run.txt
    run build-gpu/rotor-check-attention --no-bench
    grep -cE "^PASS" /tmp/run.txt | sed 's/$/ lines passed/'
  else
    for ch in 0 1; do
      echo "== prefill, ROTOR_GDN_CHUNKED=$ch"
      ROTOR_GDN_CHUNKED=$ch timeout 280 build-gpu/rotor-bench-cuda --quick --no-matvec --kv "${KV:-q4_0h}" --batches 1 \
        --ctxs 0 --prompts "${PROMPTS:-512,8192,32768}" --shapes "${SHAPES:-qwen3.5-27b}" 2>&1 | grep -E "^\|" || status=1
    done
  fi
} 2>&1 | tee "$out/verify_gdn_chunked_${PART:-checks}.txt"
exit $status
