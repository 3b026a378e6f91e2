#!/usr/bin/env bash
# Runs every test: the normal build, the same tests under AddressSanitizer + UBSan, and each libFuzzer
# target for a bounded time. Installs its own Debian packages first. Exit status is non-zero on any failure.
#   FUZZ_SECONDS=N  seconds per fuzz target (default 60)
#   SKIP_SANITIZE=1 / SKIP_FUZZ=1  for quick local runs (CI runs everything)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

scripts/setup.sh

echo "== build (Release) and tests"
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== live API tests: rotor serve on loopback with the official openai npm client"
[ -d tests/api/node_modules ] || tests/api/install.sh
ROTOR_BIN="$root/build/rotor" tests/api/run.sh

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROTOR_SANITIZE=ON -DROTOR_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ROTOR_SANITIZED=1 ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  echo "== libFuzzer targets (${FUZZ_SECONDS:-60}s each)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROTOR_FUZZ=ON \
    -DROTOR_TESTS=OFF -DROTOR_BENCH=OFF >/dev/null
  cmake --build build-fuzz -j "$jobs"
  build-fuzz/fuzz/fuzz_seeds "$root/build-fuzz/seeds"
  for fz in build-fuzz/fuzz/fuzz_*; do
    name=$(basename "$fz")
    [ -x "$fz" ] && [ "$name" != fuzz_seeds ] || continue
    corpus="$root/build-fuzz/corpus/$name"
    mkdir -p "$corpus"
    seeds="$root/build-fuzz/seeds/${name#fuzz_}"
    extra=""
    # real chat templates make the best seeds for the Jinja interpreter
    if [ "$name" = fuzz_jinja ] && [ -d "$root/../shared/testdata/templates/llama.cpp" ]; then
      extra="$root/../shared/testdata/templates/llama.cpp"
    fi
    echo "-- $name"
    "$fz" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) $extra 2>&1 | tail -n 12
  done
fi
echo "== all tests passed"
