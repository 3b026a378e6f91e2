#!/usr/bin/env bash
# Runs every test: the Release build's tests and the live API tests, then the same tests again in a
# clang build with AddressSanitizer + UBSan (also instrumented for libFuzzer), then each libFuzzer
# target for a bounded time. Installs its own Debian packages first. Non-zero exit on any failure.
#   FUZZ_SECONDS=N  seconds per fuzz target (default 60)
#   SKIP_SANITIZE=1 / SKIP_FUZZ=1 / SKIP_API=1  for quick local runs (CI runs everything)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Runs every test program of build directory $1 whole, in two shards each, $jobs shards at a time,
# the longest programs first (whole forward passes), with ROTOR_BIN set as ctest sets it. One process
# per test (ctest) costs about 0.03 s each in Release and 0.1 s under the sanitizers: with 3100 tests,
# 300 of the sanitized run's 750 test-seconds. A failing shard prints its failures (and any sanitizer
# report) and the run fails.
run_test_programs() {
  local dir=$1 exe shards=()
  mkdir -p "$dir/test-logs"
  for exe in "$dir"/tests/rotor_tests_{model,kv,server} "$dir"/tests/rotor_tests_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    case " ${shards[*]} " in *" $exe 0 "*) continue ;; esac
    shards+=("$exe 0" "$exe 1")
  done
  [ "${#shards[@]}" -gt 0 ] || { echo "no test programs in $dir/tests"; return 1; }
  printf '%s\n' "${shards[@]}" | DIR="$dir" xargs -P "$jobs" -L 1 bash -c '
    exe=$0 index=$1 log="$DIR/test-logs/$(basename "$0").$1.log"
    if (cd "$DIR/tests" && GTEST_TOTAL_SHARDS=2 GTEST_SHARD_INDEX=$index ROTOR_BIN="$DIR/rotor" \
        "$exe" --gtest_brief=1) >"$log" 2>&1; then
      echo "-- $(basename "$exe") shard $index: $(grep -E "^\[  PASSED  \]" "$log" | head -1)"
    else
      printf -- "-- %s shard %s FAILED:\n%s\n" "$(basename "$exe")" "$index" "$(tail -n 60 "$log")"
      exit 1
    fi'
}

scripts/setup.sh
# both builds with Ninja where installed (as scripts/build.sh says)
if [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null 2>&1; then
  export CMAKE_GENERATOR=Ninja
fi

echo "== build (Release) and tests"
scripts/build.sh -DROTOR_BENCH=OFF
run_test_programs "$root/build" || { echo "== a test failed"; exit 1; }

if [ "${SKIP_API:-0}" != 1 ]; then
  echo "== live API tests: rotor serve on loopback with the official openai npm client"
  [ -d tests/api/node_modules ] || tests/api/install.sh
  ROTOR_BIN="$root/build/rotor" tests/api/run.sh
fi

if [ "${SKIP_SANITIZE:-0}" != 1 ] || [ "${SKIP_FUZZ:-0}" != 1 ]; then
  # One clang build serves both: ASan + UBSan everywhere, coverage instrumentation for libFuzzer.
  # Line tables are all the debug information the sanitizers' reports use (file:line of every frame,
  # inlined ones too): about a third less compile time than full -g.
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build (clang, libFuzzer-instrumented)"
  CC=clang CXX=clang++ cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROTOR_SANITIZE=ON \
    -DROTOR_FUZZ=ON -DROTOR_BENCH=OFF -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" >/dev/null
  cmake --build build-san -j "$jobs"
fi

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== tests under ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ROTOR_SANITIZED=1 \
    run_test_programs "$root/build-san" || { echo "== a test under the sanitizers failed"; exit 1; }
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  # one target per core at a time; each prints its summary when it is done, in target order
  echo "== libFuzzer targets (${FUZZ_SECONDS:-60}s each, $jobs at a time)"
  build-san/fuzz/fuzz_seeds "$root/build-san/seeds"
  fuzz_one() {
    local fz=$1 name corpus seeds extra=""
    name=$(basename "$fz")
    corpus="$root/build-san/corpus/$name"
    mkdir -p "$corpus"
    seeds="$root/build-san/seeds/${name#fuzz_}"
    # real chat templates make the best seeds for the Jinja interpreter
    if [ "$name" = fuzz_jinja ] && [ -d "$root/../shared/testdata/templates/llama.cpp" ]; then
      extra="$root/../shared/testdata/templates/llama.cpp"
    fi
    # shellcheck disable=SC2046
    "$fz" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) $extra >"$root/build-san/$name.log" 2>&1
  }
  targets=()
  for fz in build-san/fuzz/fuzz_*; do
    [ -x "$fz" ] && [ "$(basename "$fz")" != fuzz_seeds ] && targets+=("$fz")
  done
  failed=0
  for ((i = 0; i < ${#targets[@]}; i += jobs)); do
    pids=()
    for fz in "${targets[@]:i:jobs}"; do
      fuzz_one "$fz" &
      pids+=($!)
    done
    for k in "${!pids[@]}"; do
      fz=${targets[i + k]}
      rc=0
      wait "${pids[k]}" || rc=$?
      echo "-- $(basename "$fz") (exit $rc)"
      tail -n 12 "$root/build-san/$(basename "$fz").log"
      [ "$rc" = 0 ] || failed=1
    done
  done
  [ "$failed" = 0 ] || { echo "== a fuzz target failed"; exit 1; }
fi
echo "== all tests passed"
