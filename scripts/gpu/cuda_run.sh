#!/usr/bin/env bash
# On the GPU machine, in one go: build the engine and the CUDA programs (CMake alone, no Debian
# packages), run the GPU checks against the CPU reference, then the benchmark; tables last.
#   scripts/gpu/cuda_run.sh [check|bench|tool|server|memory|profile|all]   (default all; server, memory
#   and profile are not part of all)
# "tool" also builds the whole rotor program there (its tokenizer needs pcre2.h and the server
# nlohmann/json.hpp: copy /usr/include/pcre2.h and /usr/include/nlohmann into carry/include and
# carry it; the machine has libpcre2-8.so.0) and compares `rotor run/perplexity --gpu` with the CPU.
# "server" builds the same program and runs scripts/gpu/server_gpu.py: `rotor serve --gpu` checks against
# the CPU server, the concurrency benchmark on a random Llama-3.1-8B-shape Q4_K_M model (tokenizer from
# carry/gpu/ggml-vocab-llama3-from-npm.gguf, copied from ../shared/testdata/vocab), and planner versus
# measured peak GPU memory for several configurations.
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

case "$what" in
  check|bench|all) targets="rotor-check-cuda rotor-bench-cuda rotor-check-moe rotor-check-qwen35 rotor-check-gemma4
    rotor-check-attention rotor-check-matmul-tc" ;;
  profile) targets=rotor-bench-cuda ;;
  *) targets= ;;
esac
if [ -n "$targets" ]; then
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DROTOR_ENGINE_ONLY=ON -DROTOR_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
  # shellcheck disable=SC2086
  cmake --build build-gpu -j "$jobs" --target $targets 2>&1 | grep -vE "^\[|Built target|Scanning" || true
fi

status=0
if [ "$what" = check ] || [ "$what" = all ]; then
  models=()
  [ -f carry/gpu/stories260K.gguf ] && models+=(--model carry/gpu/stories260K.gguf:1e-4)
  models+=(--model models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf:1e-4)
  # q8_0 weights: the CPU rounds activations to Q8_0 as well, the GPU keeps them f32
  models+=(--model models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf:1e-1)
  mkdir -p /tmp/rotor-synth
  build-gpu/rotor-check-cuda "${models[@]}" --synthetic /tmp/rotor-synth | tee "$out/check_cuda.txt" || status=1
  # Qwen3.5 / Gemma 4 / experts / prefill attention against the CPU, and the first two against the
  # transformers fixtures converted to GGUF: make them with (on the CPU machine)
  #   for m in qwen35 qwen35moe gemma4 gemma4_dense; do
  #     build/rotor convert-hf tests/fixtures/hf_parity/$m carry/gpu/hf/$m-f32.gguf --outtype f32; done
  hf=carry/gpu/hf
  build-gpu/rotor-check-qwen35 --hf $hf/qwen35-f32.gguf:tests/fixtures/hf_parity/qwen35 \
    --hf $hf/qwen35moe-f32.gguf:tests/fixtures/hf_parity/qwen35moe | tee "$out/check_qwen35.txt" || status=1
  build-gpu/rotor-check-gemma4 --hf gemma4=$hf/gemma4-f32.gguf --hf gemma4_dense=$hf/gemma4_dense-f32.gguf \
    | tee "$out/check_gemma4.txt" || status=1
  build-gpu/rotor-check-moe | tee "$out/check_moe.txt" | grep -v "^PASS" || status=1
  build-gpu/rotor-check-attention | tee "$out/check_attention.txt" || status=1
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  build-gpu/rotor-bench-cuda ${BENCH_ARGS:-} | tee "$out/bench_cuda.md" || status=1
  # the same decode with the q8_0 cache read in place (tables only)
  build-gpu/rotor-bench-cuda --kv q8_0 --shapes llama-3.1-8b,qwen2.5-32b --no-matvec ${BENCH_ARGS:-} | tee "$out/bench_cuda_q8_0.md" || status=1
  # and with the 4-bit Hadamard-rotated cache (q4_0h), and plain q4_0
  for kv in q4_0h q4_0; do
    build-gpu/rotor-bench-cuda --kv $kv --shapes llama-3.1-8b,qwen2.5-32b --no-matvec ${BENCH_ARGS:-} | tee "$out/bench_cuda_$kv.md" || status=1
  done
  # Qwen3.5-27B and Gemma 4 26B-A4B (issues 9, 10): per KV type, decode at 0 / 32K / 112K, 1 to 16 slots
  for kv in f16 q8_0 q4_0h; do
    build-gpu/rotor-bench-cuda --kv $kv --shapes qwen3.5-27b,gemma-4-26b-a4b --no-matvec --batches 1,4,16 \
      --ctxs 0,32768,114688 ${BENCH_ARGS:-} | tee "$out/bench_hybrid_$kv.md" || status=1
  done
fi
if [ "$what" = profile ]; then
  # Where one decode step's time goes: ncu times each kernel of the first timed step at context 0
  # (ROTOR_BENCH_PROFILE), one sequence and PROFILE_BATCH sequences; kernel_times.py sums per kernel.
  for shape in ${PROFILE_SHAPES:-qwen3.5-27b}; do
    for b in 1 ${PROFILE_BATCH:-16}; do
      ROTOR_BENCH_PROFILE=1 ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum \
        --csv --page raw build-gpu/rotor-bench-cuda --kv ${PROFILE_KV:-q4_0h} --shapes $shape --no-matvec \
        --batches $b --ctxs 0 --prompts 512 --quick >/tmp/ncu-$shape-$b.csv 2>/tmp/ncu-$shape-$b.err || status=1
      { echo "## $shape, KV ${PROFILE_KV:-q4_0h}, $b sequence(s), context 0: one decode step under ncu"
        python3 scripts/gpu/kernel_times.py /tmp/ncu-$shape-$b.csv || tail -20 /tmp/ncu-$shape-$b.err
        gzip -c /tmp/ncu-$shape-$b.csv >"$out/ncu-$shape-$b.csv.gz"
        echo; } | tee -a "$out/profile.md"
    done
  done
fi
if [ "$what" = tool ] || [ "$what" = all ] || [ "$what" = server ] || [ "$what" = memory ]; then
  cmake -S . -B build-gpu-tool -DCMAKE_BUILD_TYPE=Release -DROTOR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DROTOR_TESTS=OFF -DROTOR_BENCH=OFF -DPCRE2_INCLUDE_DIR="$PWD/carry/include" \
    -DCMAKE_CXX_FLAGS="-isystem $PWD/carry/include" >/dev/null
  cmake --build build-gpu-tool -j "$jobs" --target rotor 2>&1 | grep -vE "^\[|Built target|Scanning" || true
fi
if [ "$what" = tool ] || [ "$what" = all ]; then
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
if [ "$what" = server ]; then
  bin=build-gpu-tool/rotor
  py=scripts/gpu/server_gpu.py
  python3 $py check --bin $bin --model models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf | tee "$out/server_check.txt" || status=1
  # the hybrid and sliding-window models through the server: small random models with rotor-kjv-11m's
  # tokenizer (f32 weights: the GPU and CPU compute the same floats, so greedy outputs agree)
  kjv=models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf
  for shape in tiny-qwen35 tiny-qwen35moe tiny-gemma4; do
    build-gpu-tool/rotor synth --shape $shape --mix f32 --vocab-from $kjv -o /tmp/$shape.gguf >/dev/null
    python3 $py check --bin $bin --model /tmp/$shape.gguf | tee "$out/server_check_$shape.txt" || status=1
  done
  vocab=carry/gpu/ggml-vocab-llama3-from-npm.gguf
  $bin synth --shape llama-3.1-8b --mix Q4_K_M --vocab-from $vocab -o /tmp/llama8b-q4km.gguf >/dev/null
  $bin synth --shape llama-3.2-1b --mix Q4_K_M --vocab-from $vocab -o /tmp/llama1b-q4km.gguf >/dev/null
  python3 $py bench --bin $bin --model /tmp/llama8b-q4km.gguf --slots 16 --ctx 2048 ${SERVER_BENCH_ARGS:-} \
    | tee "$out/server_bench.md" || status=1
  {
    python3 $py memory --bin $bin --model /tmp/llama8b-q4km.gguf --kv f16 --slots 16 --ctx 4096 || status=1
    python3 $py memory --bin $bin --model /tmp/llama8b-q4km.gguf --kv q8_0 --slots 2 --ctx 65536 || status=1
    python3 $py memory --bin $bin --model /tmp/llama1b-q4km.gguf --kv q8_0 --slots 8 --ctx 32768 || status=1
    python3 $py memory --bin $bin --model /tmp/llama1b-q4km.gguf --kv f32 --slots 4 --ctx 16384 || status=1
  } | tee "$out/server_memory.txt"
fi
if [ "$what" = memory ]; then
  # The planner against measured peak GPU memory on the hybrid and sliding-window shapes (issue 8): random
  # Q4_K_M models of Qwen3.5-27B and Gemma 4 26B-A4B with real tokenizers (the vocabulary follows the
  # tokenizer's size). Put ../shared/testdata/vocab/ggml-vocab-gemma4-from-gemma3-npm.gguf and/or
  # ggml-vocab-qwen3-from-npm.gguf in carry/vocab (both uncompressed with the tree exceed the 64 MiB a
  # call takes: carry them xz-compressed and unpack there). PROFILES_ONLY=1: only the profile runs.
  bin=build-gpu-tool/rotor
  py=scripts/gpu/server_gpu.py
  {
    nvidia-smi --query-gpu=name,memory.total,memory.reserved,memory.used,memory.free --format=csv
    # then `make run-qwen` / `make run-gemma` with the file under the profile's name (the make target
    # serves a file already there), --profile auto on this card: the long-context variant, measured
    mkdir -p /tmp/models
    profile_run() {  # MODEL_FILE PROFILE_JSON MAKE_TARGET
      local f; f=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['model']['file'])" "$2")
      mv "$1" "/tmp/models/$f"
      read -r slots ctx kv < <(python3 -c "import json,sys; v=json.load(open(sys.argv[1]))['variants']['long_context']
print(v['slots'], v['ctx_per_slot'], v['kv_k'])" "$2")
      python3 $py memory --bin $bin --model "/tmp/models/$f" --kv "$kv" --slots "$slots" --ctx "$ctx" \
        --cmd "make -o build $3 ROTOR=$bin MODELS=/tmp/models SERVE_ARGS='--port 0'" || status=1
      # twice the profile's slots: the server must refuse at load with the plan's numbers
      echo "== $((2 * slots)) slots x $ctx: expect a refusal"
      timeout 120 $bin serve -m "/tmp/models/$f" --gpu --slots $((2 * slots)) --ctx-per-slot "$ctx" --kv-k "$kv" \
        --kv-v "$kv" --port 0 >/tmp/refusal.txt 2>&1 || true
      cat /tmp/refusal.txt
      grep -q "not enough GPU memory" /tmp/refusal.txt || { echo "FAIL: no refusal"; status=1; }
      rm -f "/tmp/models/$f"
    }
    gv=carry/vocab/ggml-vocab-gemma4-from-gemma3-npm.gguf
    if [ -f $gv ]; then
      $bin synth --shape gemma-4-26b-a4b --mix Q4_K_M --vocab-from $gv -o /tmp/g26.gguf >/dev/null
      if [ -z "${PROFILES_ONLY:-}" ]; then
        python3 $py memory --bin $bin --model /tmp/g26.gguf --kv q8_0 --slots 2 --ctx 65536 || status=1
        python3 $py memory --bin $bin --model /tmp/g26.gguf --kv f16 --slots 8 --ctx 8192 || status=1
      fi
      profile_run /tmp/g26.gguf profiles/h200-gemma4.json run-gemma
    else echo "skipped Gemma 4: no $gv"; fi
    qv=carry/vocab/ggml-vocab-qwen3-from-npm.gguf
    if [ -f $qv ]; then
      $bin synth --shape qwen3.5-27b --mix Q4_K_M --vocab-from $qv -o /tmp/q27.gguf >/dev/null
      if [ -z "${PROFILES_ONLY:-}" ]; then
        python3 $py memory --bin $bin --model /tmp/q27.gguf --kv q4_0h --slots 4 --ctx 32768 || status=1
        python3 $py memory --bin $bin --model /tmp/q27.gguf --kv q8_0 --slots 1 --ctx 131072 || status=1
      fi
      profile_run /tmp/q27.gguf profiles/h200.json run-qwen
    else echo "skipped Qwen3.5: no $qv"; fi
  } | tee "$out/server_memory_hybrid.txt"
fi
exit $status
