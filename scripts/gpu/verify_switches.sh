#!/usr/bin/env bash
# On the GPU machine, after `scripts/gpu/cuda_run.sh check` built build-gpu/ and passed: the faster
# paths that are off by default (written in the 2026-11-28 session, compiled but never run on a GPU),
# each checked with its switch on, then the benchmarks that decide whether to turn it on.
#   prefill attention  ROTOR_PREFILL_ATTENTION=1   (attention_prefill.cu; default in its g_enabled,
#                      threshold kMinRun in CudaForward::attend from rotor-check-attention's short-run table)
#   fused llama decode ROTOR_FUSED_DECODE=1        (kernels.cu g_fused_decode)
#   team-split mat-vec ROTOR_MMVQ=2                (matvec_q8.cu g_kernel)
#   Qwen3.5 fast path  rotor-check-qwen35 --fast   (cuda_forward_qwen35.cu g_fast_paths)
#   MoE two waves      compile-time kGpwTwoWaves in moe.cu (set it, rebuild, rerun rotor-check-moe)
# Turn a path on only when its checks print "0 failed" and its benchmark shows the gain.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-out}
mkdir -p "$out" /tmp/rotor-synth
hf=carry/gpu/hf
m=(--model carry/gpu/stories260K.gguf:1e-4 --model models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf:1e-4
   --model models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf:1e-1)
status=0
run() { echo "== $*"; "$@" 2>&1 | tail -n 40 || status=1; }
{
  run build-gpu/rotor-check-attention
  run env ROTOR_PREFILL_ATTENTION=1 build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  run env ROTOR_PREFILL_ATTENTION=1 build-gpu/rotor-check-gemma4 --hf gemma4=$hf/gemma4-f32.gguf \
    --hf gemma4_dense=$hf/gemma4_dense-f32.gguf
  run env ROTOR_FUSED_DECODE=1 ROTOR_MMVQ=2 build-gpu/rotor-check-cuda "${m[@]}" --synthetic /tmp/rotor-synth
  run build-gpu/rotor-check-qwen35 --fast --bench --hf $hf/qwen35-f32.gguf:tests/fixtures/hf_parity/qwen35 \
    --hf $hf/qwen35moe-f32.gguf:tests/fixtures/hf_parity/qwen35moe
  for env in "" "ROTOR_FUSED_DECODE=1" "ROTOR_FUSED_DECODE=1 ROTOR_MMVQ=2"; do
    run env $env build-gpu/rotor-bench-cuda --quick --no-matvec --batches 1,4 --shapes llama-3.1-8b,qwen2.5-32b
  done
} | tee "$out/verify_switches.txt"
exit $status
