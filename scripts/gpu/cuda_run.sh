#!/usr/bin/env bash
# On the GPU machine, in one go: build the engine and the CUDA programs (CMake alone, no Debian
# packages), run the GPU checks against the CPU reference, then the benchmark; tables last.
#   scripts/gpu/cuda_run.sh [check|bench|tool|all]   (default all)
# "tool" also builds the whole rotor program there (its tokenizer needs pcre2.h and the server
# nlohmann/json.hpp: copy /usr/include/pcre2.h and /usr/include/nlohmann into carry/include and
# carry it; the machine has libpcre2-8.so.0) and compares `rotor run/perplexity --gpu` with the CPU.
# Models: stories260K from carry/gpu/ (copy ../shared/testdata/stories260K/stories260K.gguf there and
# name carry/gpu in the device tool's carry), rotor-kjv-11m from models/ (tracked).
#   ARCH=90 (default: the GPU's own, from nvidia-smi)   BENCH_ARGS="--quick ..."
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
arch=${ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
jobs=$(nproc)
out=${OUT:-out}
mkdir -p "$out"

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DROTOR_ENGINE_ONLY=ON -DROTOR_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
cmake --build build-gpu -j "$jobs" --target rotor-check-cuda rotor-bench-cuda 2>&1 | grep -vE "^\[|Built target|Scanning" || true

status=0
if [ "$what" = check ] || [ "$what" = all ]; then
  models=()
  [ -f carry/gpu/stories260K.gguf ] && models+=(--model carry/gpu/stories260K.gguf:1e-4)
  models+=(--model models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf:1e-4)
  # q8_0 weights: the CPU rounds activations to Q8_0 as well, the GPU keeps them f32
  models+=(--model models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf:1e-1)
  mkdir -p /tmp/rotor-synth
  build-gpu/rotor-check-cuda "${models[@]}" --synthetic /tmp/rotor-synth | tee "$out/check_cuda.txt" || status=1
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  build-gpu/rotor-bench-cuda ${BENCH_ARGS:-} | tee "$out/bench_cuda.md" || status=1
  # the same decode with the q8_0 cache read in place (tables only)
  build-gpu/rotor-bench-cuda --kv q8_0 --shapes llama-3.1-8b,qwen2.5-32b --no-matvec ${BENCH_ARGS:-} | tee "$out/bench_cuda_q8_0.md" || status=1
fi
if [ "$what" = tool ] || [ "$what" = all ]; then
  cmake -S . -B build-gpu-tool -DCMAKE_BUILD_TYPE=Release -DROTOR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DROTOR_TESTS=OFF -DROTOR_BENCH=OFF -DPCRE2_INCLUDE_DIR="$PWD/carry/include" \
    -DCMAKE_CXX_FLAGS="-isystem $PWD/carry/include" >/dev/null
  cmake --build build-gpu-tool -j "$jobs" --target rotor 2>&1 | grep -vE "^\[|Built target|Scanning" || true
  m=models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf
  {
    for dev in cpu gpu; do
      flag=$([ $dev = gpu ] && echo --gpu || true)
      echo "== rotor run $flag (greedy, bf16 weights, f16 KV)"
      build-gpu-tool/rotor run -m $m -p "And God said" -n 48 --temp 0 $flag 2>&1
      for kv in f32 f16; do
        echo "== rotor perplexity $flag --ctx 512 --chunks 16, KV $kv"
        build-gpu-tool/rotor perplexity -m $m -f models/rotor-kjv-11m/val.txt --ctx 512 --chunks 16 \
          --kv-k $kv --kv-v $kv --parallel 16 $flag 2>&1 | grep -iE "ppl|perplexity|error|GPU" | tail -3
      done
    done
  } | tee "$out/tool_gpu.txt" || status=1
fi
exit $status
