# Sourced by the scripts/gpu/verify_*.sh scripts (on the GPU machine): builds the CUDA programs named in
# $targets into build-gpu/ for this GPU (ARCH=90 to choose), and defines the check programs' model
# arguments (carry/gpu as cuda_run.sh check says: m for rotor-check-cuda, q for rotor-check-qwen35, g for
# rotor-check-gemma4), $out (OUT, default out/), $status and run CMD...: CMD with a time limit, its
# failures and last lines shown, $status set to 1 if it failed; its whole output stays in /tmp/run.txt.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-out}
arch=${ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
mkdir -p "$out" /tmp/rotor-synth
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DROTOR_ENGINE_ONLY=ON -DROTOR_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
# shellcheck disable=SC2086,SC2154
cmake --build build-gpu -j "$(nproc)" --target $targets 2>&1 | grep -vE "^\[|Built target|Scanning" || true
hf=carry/gpu/hf
m=(--model carry/gpu/stories260K.gguf:1e-4 --model models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf:1e-4
   --model models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf:1e-1)
q=(--hf $hf/qwen35-f32.gguf:tests/fixtures/hf_parity/qwen35 --hf $hf/qwen35moe-f32.gguf:tests/fixtures/hf_parity/qwen35moe)
g=(--hf gemma4=$hf/gemma4-f32.gguf --hf gemma4_dense=$hf/gemma4_dense-f32.gguf)
status=0
run() {
  echo "== $*"
  local t0=$SECONDS
  timeout "${RUN_LIMIT:-240}" "$@" >/tmp/run.txt 2>&1 || { echo "exit status $?"; status=1; }
  grep -E "FAIL|error" /tmp/run.txt | head -n 40
  tail -n 2 /tmp/run.txt
  echo "($((SECONDS - t0)) s)"
}
