#!/usr/bin/env bash
# On the GPU machine: the checks of the defaults in one go (rotor-check-cuda with every model and the
# synthetic ones, its "k4" / "mmq-f16" line counts, rotor-check-qwen35 (its transformers and chunked delta rule
# lines shown), rotor-check-gemma4, the prefill
# and decode cases of rotor-check-attention), a short Qwen3.5-27B decode run at 1 and 16 slots and batch-1 decode of
# three Q4_K_M-mix shapes with f16 KV. Models: carry/gpu
# as cuda_run.sh check says.
targets="rotor-check-cuda rotor-bench-cuda rotor-check-qwen35 rotor-check-gemma4 rotor-check-attention"
source "$(dirname "$0")/verify_common.sh"
{
  run build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  echo "$(grep -cE '^PASS .* k4 ' /tmp/run.txt) k4 lines passed; $(grep -cE '^PASS .*mmq-f16' /tmp/run.txt) mmq-f16 lines passed"
  run build-gpu/rotor-check-qwen35 "${q[@]}"
  grep -E "chunked delta rule|vs transformers" /tmp/run.txt
  run build-gpu/rotor-check-gemma4 "${g[@]}"
  echo "== bench defaults"
  timeout 120 build-gpu/rotor-bench-cuda --quick --no-matvec --kv q4_0h --batches 1,16 --ctxs 0 --prompts 512 --shapes qwen3.5-27b 2>&1 | grep -E "^\| (qwen|llama)" || status=1
  timeout 120 build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1 --ctxs 0 --prompts 512 \
    --shapes llama-3.1-8b,qwen2.5-32b,qwen3.5-27b 2>&1 | grep -E "^\| (qwen|llama)" || status=1
  run build-gpu/rotor-check-attention --no-bench
} 2>&1 | tee "$out/verify_defaults.txt"
exit $status
